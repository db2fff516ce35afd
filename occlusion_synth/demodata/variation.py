"""Per-sample nuisance variation of the demo data: pose jitter and photometric changes.

Everything a classifier could latch onto besides the expression (framing, mirror side, colour,
exposure, lighting direction, sharpness, noise, compression) is randomised per sample from the
sample's own generator, so the class signal is the expression geometry and mouth appearance.
"""
from __future__ import annotations

import cv2
import numpy as np

# mirror permutation of the iBUG-68 scheme (index i of a flipped face is point FLIP_68[i])
FLIP_68 = np.array(
    list(range(16, -1, -1))                       # jaw
    + list(range(26, 16, -1))                     # brows
    + [27, 28, 29, 30] + [35, 34, 33, 32, 31]     # nose
    + [45, 44, 43, 42, 47, 46] + [39, 38, 37, 36, 41, 40]  # eyes
    + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55]     # outer lips
    + [64, 63, 62, 61, 60, 67, 66, 65],                    # inner lips
    dtype=np.int64)


def pose_matrix(rng: np.random.Generator, size: float, rotation: float = 9.0,
                scale_range: tuple[float, float] = (0.9, 1.08), shift: float = 0.04,
                p_flip: float = 0.5) -> tuple[np.ndarray, bool]:
    """Random similarity (maybe mirrored) of a ``size x size`` frame about its centre.

    Returns:
        ``((2, 3) float64 matrix frame -> output, flipped)``.
    """
    angle = np.radians(rng.uniform(-rotation, rotation))
    s = rng.uniform(*scale_range)
    t = rng.uniform(-shift, shift, size=2) * size
    flip = bool(rng.random() < p_flip)
    c = (size - 1) / 2.0
    rot = s * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    lin = rot @ np.diag([-1.0 if flip else 1.0, 1.0])
    m = np.empty((2, 3))
    m[:, :2] = lin
    m[:, 2] = np.array([c, c]) + t - lin @ np.array([c, c])
    return m, flip


def photometric(image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """Random colour, exposure, lighting, resolution, blur and noise changes.

    Args:
        image: ``(H, W, 3) uint8 RGB``.

    Returns:
        ``(image (H, W, 3) uint8 RGB, params dict)``; the JPEG quality to save with is
        ``params["jpeg_quality"]``.
    """
    h, w = image.shape[:2]
    img = image.astype(np.float32)
    p: dict = {}
    p["grey"] = bool(rng.random() < 0.08)
    if p["grey"]:
        img[:] = (img @ np.array([0.299, 0.587, 0.114], np.float32))[..., None]
    else:
        p["saturation"] = float(rng.uniform(0.6, 1.3))
        grey = (img @ np.array([0.299, 0.587, 0.114], np.float32))[..., None]
        img = grey + p["saturation"] * (img - grey)
        gains = rng.uniform(0.88, 1.12, size=3).astype(np.float32)
        img *= gains / gains.mean()
    p["contrast"] = float(rng.uniform(0.7, 1.25))
    p["brightness"] = float(rng.uniform(-25, 25))
    img = (img - img.mean()) * p["contrast"] + img.mean() + p["brightness"]
    # directional lighting: a linear ramp across the frame
    p["light"] = float(rng.uniform(0.0, 0.35))
    ang = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    ramp = ((xx / w - 0.5) * np.cos(ang) + (yy / h - 0.5) * np.sin(ang))
    img *= (1.0 + p["light"] * 2.0 * ramp)[..., None]
    p["gamma"] = float(rng.uniform(0.7, 1.45))
    img = 255.0 * (np.clip(img, 0, 255) / 255.0) ** p["gamma"]
    if rng.random() < 0.3:  # low-resolution source, as many in-the-wild crops are
        f = float(rng.uniform(0.45, 0.8))
        small = cv2.resize(img, (max(8, round(w * f)), max(8, round(h * f))), interpolation=cv2.INTER_AREA)
        img = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
        p["downscale"] = f
    if rng.random() < 0.4:
        p["blur"] = float(rng.uniform(0.3, 1.0))
        img = cv2.GaussianBlur(img, (0, 0), p["blur"])
    p["noise"] = float(rng.uniform(0.0, 6.0))
    img = img + rng.normal(0.0, p["noise"], size=img.shape).astype(np.float32)
    p["jpeg_quality"] = int(rng.integers(60, 96))
    return np.clip(img + 0.5, 0, 255).astype(np.uint8), p
