"""2-D geometry helpers: similarity/affine matrices (2x3, mapping template -> image pixels)."""
from __future__ import annotations

import math

import numpy as np


def similarity_matrix(src_point, dst_point, angle_deg: float, scale: float) -> np.ndarray:
    """Matrix that rotates by ``angle_deg`` and scales by ``scale`` about ``src_point``, then
    moves ``src_point`` onto ``dst_point``.

    Angles follow image coordinates (y down): a positive angle turns clockwise on screen,
    the same sign convention as :func:`occlusion_synth.landmarks.schemes.roll_angle`, so
    passing the face roll makes the occluder follow the head.

    Returns:
        ``(2, 3) float64`` matrix ``M`` with ``dst = M @ [x, y, 1]``.
    """
    a = math.radians(angle_deg)
    c, s = math.cos(a) * scale, math.sin(a) * scale
    sx, sy = float(src_point[0]), float(src_point[1])
    dx, dy = float(dst_point[0]), float(dst_point[1])
    return np.array([[c, -s, dx - (c * sx - s * sy)],
                     [s, c, dy - (s * sx + c * sy)]], dtype=np.float64)


def similarity_from_points(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation) taking ``src`` to ``dst``.

    Args:
        src, dst: ``(N, 2)`` corresponding points, ``N >= 2``.

    Returns:
        ``(2, 3) float64`` matrix (Umeyama's closed form, no reflection).
    """
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    mu_s, mu_d = src.sum(0) / len(src), dst.sum(0) / len(dst)
    s0, d0 = src - mu_s, dst - mu_d
    # the 2-D similarity as a complex product d = z * s, z = a + ib = sum(conj(s) d) / sum(|s|^2),
    # written out in real arithmetic
    sx, sy, dx, dy = s0[:, 0], s0[:, 1], d0[:, 0], d0[:, 1]
    denom = float(sx @ sx + sy @ sy) or 1.0
    a, b = float(sx @ dx + sy @ dy) / denom, float(sx @ dy - sy @ dx) / denom
    t = mu_d - np.array([a * mu_s[0] - b * mu_s[1], b * mu_s[0] + a * mu_s[1]])
    return np.array([[a, -b, t[0]], [b, a, t[1]]], dtype=np.float64)


def transform_points(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a ``(2, 3)`` affine matrix to ``(N, 2)`` points; returns ``(N, 2) float64``."""
    pts = np.asarray(points, np.float64).reshape(-1, 2)
    m = np.asarray(matrix, np.float64)
    return pts @ m[:, :2].T + m[:, 2]


def matrix_scale(matrix: np.ndarray) -> float:
    """Geometric-mean linear scale of an affine matrix (sqrt of |det|)."""
    m = np.asarray(matrix, np.float64)
    return float(math.sqrt(abs(np.linalg.det(m[:, :2]))))


def warped_bbox(points: np.ndarray, shape: tuple[int, int], pad: int = 2) -> tuple[int, int, int, int] | None:
    """Integer box ``x0, y0, x1, y1`` (exclusive ends) around ``points`` plus ``pad``, clipped to
    an image of ``shape`` ``(H, W)``; ``None`` when it falls entirely outside."""
    pts = np.asarray(points, np.float64).reshape(-1, 2)
    h, w = int(shape[0]), int(shape[1])
    x0 = max(0, int(math.floor(pts[:, 0].min())) - pad)
    y0 = max(0, int(math.floor(pts[:, 1].min())) - pad)
    x1 = min(w, int(math.ceil(pts[:, 0].max())) + pad + 1)
    y1 = min(h, int(math.ceil(pts[:, 1].max())) + pad + 1)
    if x1 <= x0 or y1 <= y0:
        return None
    return x0, y0, x1, y1
