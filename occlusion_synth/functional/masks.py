"""Masks: occlusion mask from alpha, the face region from landmarks, occluded fraction.

Definitions used everywhere in the project:

* **Footprint**: pixels where the final alpha is ``> 0`` (alphas below ``FOOTPRINT_EPS`` are
  zeroed first: such an alpha changes a pixel by less than half a level, i.e. not at all).
* **Occlusion mask** (honest): ``255`` on the footprint, ear loops and feathered edges included,
  and under the shadow when one is drawn; ``0`` elsewhere. Every pixel the occluder changed is in
  the mask and, with any options, no pixel outside it changes.
  :func:`alpha_to_mask` with ``MASK_THRESHOLD`` (0.5) gives the stricter "at least half
  occluder" mask for callers who want it.
* **Face region**: the convex hull of the 17 jaw points and the 10 eyebrow points, the brow
  points raised along the face's own vertical axis (perpendicular to the eye line, so it
  follows roll) by ``forehead`` x inter-ocular distance (default 0.3) to include some forehead.
* **Occluded fraction**: ``|mask AND face region| / |face region|``.
"""
from __future__ import annotations

import cv2
import numpy as np

from ..landmarks.schemes import eye_centres, inter_ocular_distance

MASK_THRESHOLD = 0.5
FOOTPRINT_EPS = 1.0 / 512.0
FOREHEAD = 0.3

_JAW = list(range(0, 17))
_BROWS = list(range(17, 27))


def alpha_to_mask(alpha: np.ndarray, threshold: float = MASK_THRESHOLD) -> np.ndarray:
    """``(H, W)`` float alpha in 0..1 -> ``(H, W) uint8`` mask with values 0/255."""
    return np.where(np.asarray(alpha) >= threshold, 255, 0).astype(np.uint8)


def footprint_mask(alpha: np.ndarray) -> np.ndarray:
    """``(H, W)`` float alpha -> ``(H, W) uint8`` 0/255: 255 wherever alpha > 0 (the honest mask)."""
    return np.where(np.asarray(alpha) > 0, 255, 0).astype(np.uint8)


# Cheeks (iBUG-68 indices, each a closed polygon): skin far from eyes, brows, lips and hair.
SKIN_POLYGONS = ((1, 2, 3, 4, 48, 31, 29), (15, 14, 13, 12, 54, 35, 29))


def skin_polygons(landmarks: np.ndarray) -> list:
    """The cheek polygons of :data:`SKIN_POLYGONS` in image pixels, as lists of ``[x, y]``."""
    lm = np.asarray(landmarks, np.float64)
    return [lm[list(idx)].tolist() for idx in SKIN_POLYGONS]


def inside_fraction(footprint: np.ndarray, face_mask: np.ndarray, box=None) -> float:
    """Fraction of an occluder's footprint that lies inside the face region.

    Args:
        footprint: ``(h, w)`` mask (> 0 = occluder); the whole image, or a patch at ``box``.
        face_mask: ``(H, W) uint8`` face region of the whole image.
        box: ``(x0, y0, x1, y1)`` where ``footprint`` sits when it is a patch.
    """
    foot = np.asarray(footprint) > 0
    total = int(np.count_nonzero(foot))
    if total == 0:
        return 0.0
    region = face_mask if box is None else face_mask[box[1]:box[3], box[0]:box[2]]
    return int(np.count_nonzero(foot & (region > 0))) / total


def face_up_vector(landmarks: np.ndarray) -> np.ndarray:
    """Unit vector pointing from chin to forehead in image coordinates (follows roll)."""
    right, left = eye_centres(landmarks)
    d = left - right
    n = float(np.linalg.norm(d)) or 1.0
    # rotate the eye-line direction by -90 degrees (y down): (dx, dy) -> (dy, -dx)
    return np.array([d[1], -d[0]]) / n


def face_region_polygon(landmarks: np.ndarray, forehead: float = FOREHEAD) -> np.ndarray:
    """Convex polygon of the face region (see module docstring), ``(K, 2) float64``."""
    lm = np.asarray(landmarks, np.float64)
    iod = inter_ocular_distance(lm)
    brows = lm[_BROWS] + face_up_vector(lm) * forehead * iod
    pts = np.concatenate([lm[_JAW], brows]).astype(np.float32)
    return cv2.convexHull(pts).reshape(-1, 2).astype(np.float64)


def face_region_mask(landmarks: np.ndarray, shape: tuple[int, int],
                     forehead: float = FOREHEAD) -> np.ndarray:
    """Rasterise the face region into an ``(H, W) uint8`` 0/255 mask of ``shape`` ``(H, W)``."""
    return polygon_mask(face_region_polygon(landmarks, forehead), shape)


def polygon_mask(polygon: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Fill a ``(K, 2)`` float polygon (sub-pixel precise) into an ``(H, W) uint8`` 0/255 mask."""
    mask = np.zeros(tuple(int(s) for s in shape[:2]), np.uint8)
    poly = np.round(np.asarray(polygon, np.float64) * 16).astype(np.int32)
    cv2.fillPoly(mask, [poly], 255, lineType=cv2.LINE_8, shift=4)
    return mask


def occluded_fraction(mask: np.ndarray, face_mask: np.ndarray, box=None) -> float:
    """Fraction of the face region covered by ``mask``.

    Args:
        mask: ``(h, w) uint8`` occlusion mask; the whole image, or a patch at ``box``.
        face_mask: ``(H, W) uint8`` face region of the whole image.
        box: ``(x0, y0, x1, y1)`` where ``mask`` sits when it is a patch.
    """
    total = int(np.count_nonzero(face_mask))
    if total == 0:
        return 0.0
    region = face_mask if box is None else face_mask[box[1]:box[3], box[0]:box[2]]
    return int(np.count_nonzero((mask > 0) & (region > 0))) / total
