"""Landmark schemes: named index groups of the iBUG 68-point scheme (0-based indices).

The MediaPipe face-mesh -> 68 mapping table and the 24-point PG-CNN subset live here too.
"""
from __future__ import annotations

import numpy as np

# iBUG-68 groups, 0-based (the 1-based numbers of the usual figure minus one).
JAW = tuple(range(0, 17))
RIGHT_BROW = tuple(range(17, 22))  # subject's right = image left
LEFT_BROW = tuple(range(22, 27))
NOSE_BRIDGE = tuple(range(27, 31))
NOSE_BOTTOM = tuple(range(31, 36))
NOSE = NOSE_BRIDGE + NOSE_BOTTOM
RIGHT_EYE = tuple(range(36, 42))
LEFT_EYE = tuple(range(42, 48))
MOUTH_OUTER = tuple(range(48, 60))
MOUTH_INNER = tuple(range(60, 68))
MOUTH = MOUTH_OUTER + MOUTH_INNER
BROWS = RIGHT_BROW + LEFT_BROW
EYES = RIGHT_EYE + LEFT_EYE

GROUPS: dict[str, tuple[int, ...]] = {
    "jaw": JAW,
    "right_brow": RIGHT_BROW,
    "left_brow": LEFT_BROW,
    "brows": BROWS,
    "nose_bridge": NOSE_BRIDGE,
    "nose_bottom": NOSE_BOTTOM,
    "nose": NOSE,
    "right_eye": RIGHT_EYE,
    "left_eye": LEFT_EYE,
    "eyes": EYES,
    "mouth_outer": MOUTH_OUTER,
    "mouth_inner": MOUTH_INNER,
    "mouth": MOUTH,
}


def eye_centres(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return the centres of the right (image-left) and left (image-right) eyes, each ``(2,)``."""
    lm = np.asarray(landmarks, dtype=np.float64)
    return lm[list(RIGHT_EYE)].mean(axis=0), lm[list(LEFT_EYE)].mean(axis=0)


def inter_ocular_distance(landmarks: np.ndarray) -> float:
    """Distance between the two eye centres, in pixels (the usual normaliser of landmark error)."""
    r, l = eye_centres(landmarks)
    return float(np.linalg.norm(l - r))


def roll_angle(landmarks: np.ndarray) -> float:
    """In-plane head rotation in degrees (positive when the image-right eye is lower)."""
    r, l = eye_centres(landmarks)
    d = l - r
    return float(np.degrees(np.arctan2(d[1], d[0])))
