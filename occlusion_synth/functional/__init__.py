"""Pure numpy/cv2 kernels: geometry, warping, blending, harmonisation, masks and blocks.

Every function here takes all of its parameters explicitly (no randomness, no package state),
so a transform is replayable from its recorded parameters. Nothing here imports the rest of
the package except :mod:`occlusion_synth.errors`.
"""
from .blend import composite, feather_alpha, shadow_alpha
from .blocks import BLOCK_KINDS, BLOCK_SIZES, block_rect, block_side, fill_block
from .crop import CropBox, FaceCrop, crop_square, face_crop, face_crop_box, resize_image
from .geometry import similarity_from_points, similarity_matrix, transform_points, warped_bbox
from .harmonise import SceneStats, edge_blur, harmonise_occluder, is_grey, luma, measure_scene, noise_sigma
from .masks import (FOOTPRINT_EPS, MASK_THRESHOLD, alpha_to_mask, face_region_mask,
                    face_region_polygon, footprint_mask, inside_fraction, occluded_fraction,
                    polygon_mask, skin_polygons)
from .warp import render_affine, render_tps

__all__ = [
    "BLOCK_KINDS", "BLOCK_SIZES", "CropBox", "FOOTPRINT_EPS", "FaceCrop", "MASK_THRESHOLD", "SceneStats", "alpha_to_mask",
    "block_rect", "block_side", "composite", "crop_square", "edge_blur", "face_region_mask", "face_crop", "face_crop_box", "face_region_polygon",
    "feather_alpha", "fill_block", "footprint_mask", "harmonise_occluder", "inside_fraction", "is_grey",
    "luma", "measure_scene", "noise_sigma", "occluded_fraction", "polygon_mask", "render_affine",
    "render_tps", "resize_image", "shadow_alpha", "similarity_from_points", "similarity_matrix", "skin_polygons",
    "transform_points", "warped_bbox",
]
