"""Pure numpy/cv2 kernels: geometry, warping, blending, colour matching, masks and blocks.

Every function here takes all of its parameters explicitly (no randomness, no package state),
so a transform is replayable from its recorded parameters. Nothing here imports the rest of
the package except :mod:`occlusion_synth.errors`.
"""
from .blend import composite, feather_alpha, shadow_alpha
from .blocks import BLOCK_KINDS, BLOCK_SIZES, block_rect, block_side, fill_block
from .color import harmonize
from .crop import CropBox, FaceCrop, crop_square, face_crop, face_crop_box, resize_image
from .geometry import similarity_from_points, similarity_matrix, transform_points, warped_bbox
from .masks import (FOOTPRINT_EPS, MASK_THRESHOLD, alpha_to_mask, face_region_mask,
                    face_region_polygon, occluded_fraction, polygon_mask)
from .warp import render_affine, render_tps

__all__ = [
    "BLOCK_KINDS", "BLOCK_SIZES", "CropBox", "FOOTPRINT_EPS", "FaceCrop", "MASK_THRESHOLD", "alpha_to_mask", "block_rect",
    "block_side", "composite", "crop_square", "face_crop", "face_crop_box", "face_region_mask", "face_region_polygon", "feather_alpha",
    "fill_block", "harmonize", "occluded_fraction", "polygon_mask", "render_affine", "resize_image", "render_tps",
    "shadow_alpha", "similarity_from_points", "similarity_matrix", "transform_points",
    "warped_bbox",
]
