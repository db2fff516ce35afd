"""Aligned face crops: the similarity warp that aligned datasets (RAF-DB "aligned") apply.

Used to measure the ``aligned`` backend (benchmarks, tests) and by anyone who wants to turn an
in-the-wild photo plus landmarks into an aligned crop.
"""
from __future__ import annotations

import numpy as np

from .schemes import eye_centres


def aligned_crop(image: np.ndarray, landmarks: np.ndarray, size: int = 100, eye_y: float = 0.40,
                 iod_frac: float = 0.36) -> tuple[np.ndarray, np.ndarray]:
    """Rotate, scale and crop so that the eyes are level, centred and ``iod_frac * size`` apart.

    The defaults approximate RAF-DB's aligned 100x100 crops (eye line at 40 % of the height,
    face filling most of the frame). Downscaling is anti-aliased with a Gaussian blur first.

    Args:
        image: ``(H, W, 3) uint8 RGB``.
        landmarks: ``(68, 2)`` landmarks of the face in ``image``.
        size: output side in pixels.
        eye_y: height of the eye line as a fraction of ``size``.
        iod_frac: inter-ocular distance as a fraction of ``size``.

    Returns:
        ``(crop, matrix)``: the ``(size, size, 3) uint8`` crop and the ``(2, 3) float64`` affine
        matrix mapping image pixels to crop pixels (``pts @ matrix[:, :2].T + matrix[:, 2]``).
    """
    import cv2

    right, left = eye_centres(landmarks)
    d = left - right
    angle = np.arctan2(d[1], d[0])
    scale = iod_frac * size / float(np.hypot(*d))
    c, s = np.cos(-angle) * scale, np.sin(-angle) * scale
    rot = np.array([[c, -s], [s, c]])
    shift = np.array([size / 2 - 0.5, eye_y * size - 0.5]) - rot @ ((left + right) / 2)
    matrix = np.hstack([rot, shift[:, None]])
    sigma = 0.5 / scale - 0.5  # blur only when shrinking noticeably
    src = cv2.GaussianBlur(image, (0, 0), sigma) if sigma > 0.3 else image
    crop = cv2.warpAffine(src, matrix, (size, size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REFLECT)
    return np.ascontiguousarray(crop), matrix


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply a ``(2, 3)`` affine ``matrix`` to ``(N, 2)`` points; returns ``(N, 2) float32``."""
    pts = np.asarray(points, dtype=np.float64)
    return (pts @ matrix[:, :2].T + matrix[:, 2]).astype(np.float32)
