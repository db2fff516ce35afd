"""Geometry kernels of the demo-data generator: similarity fits and a thin-plate-spline dense warp.

Pure numpy/cv2 functions, every parameter explicit. Points are ``(N, 2)`` float arrays of
``x, y`` pixel coordinates (pixel centres at integers, the cv2 convention).
"""
from __future__ import annotations

import cv2
import numpy as np


def similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity transform (rotation, uniform scale, translation; no reflection).

    Umeyama's closed form, so the result is exact and deterministic (no RANSAC).

    Args:
        src, dst: ``(N, 2)`` corresponding points, ``N >= 2``.

    Returns:
        ``(2, 3) float64`` matrix ``M`` with ``dst ~= src @ M[:, :2].T + M[:, 2]``.
    """
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    cov = d.T @ s / len(src)
    u, sig, vt = np.linalg.svd(cov)
    sign = np.diag([1.0, np.sign(np.linalg.det(u @ vt)) or 1.0])
    rot = u @ sign @ vt
    scale = float(np.trace(np.diag(sig) @ sign) / (s ** 2).sum(1).mean())
    m = np.empty((2, 3))
    m[:, :2] = scale * rot
    m[:, 2] = mu_d - m[:, :2] @ mu_s
    return m


def apply_affine(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Apply a ``(2, 3)`` affine matrix to ``(N, 2)`` points."""
    pts = np.asarray(pts, np.float64)
    return pts @ m[:, :2].T + m[:, 2]


def invert_affine(m: np.ndarray) -> np.ndarray:
    """Inverse of a ``(2, 3)`` affine matrix."""
    return cv2.invertAffineTransform(np.asarray(m, np.float64))


def compose_affine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The affine ``x -> a(b(x))`` as a ``(2, 3)`` matrix."""
    out = np.empty((2, 3))
    out[:, :2] = a[:, :2] @ b[:, :2]
    out[:, 2] = a[:, :2] @ b[:, 2] + a[:, 2]
    return out


def _tps_kernel(r2: np.ndarray) -> np.ndarray:
    # U(r) = r^2 log r^2 (a constant factor of the usual r^2 log r; absorbed by the weights)
    with np.errstate(divide="ignore", invalid="ignore"):
        k = r2 * np.log(r2)
    k[r2 == 0] = 0.0
    return k


class ThinPlateSpline:
    """2-D thin-plate spline interpolating ``src -> dst`` point pairs (smooth, minimal bending).

    Args:
        src: ``(N, 2)`` control points where the function is known.
        dst: ``(N, 2)`` values at the control points.
        regularization: smoothing (0 interpolates exactly); a small value keeps near-duplicate
            control points from producing large oscillations.
    """

    def __init__(self, src: np.ndarray, dst: np.ndarray, regularization: float = 1e-3):
        src = np.asarray(src, np.float64)
        dst = np.asarray(dst, np.float64)
        # normalise coordinates so the regularisation and conditioning are scale-free
        self.centre = src.mean(0)
        self.scale = float(np.abs(src - self.centre).max()) or 1.0
        p = (src - self.centre) / self.scale
        n = len(p)
        k = _tps_kernel(((p[:, None, :] - p[None, :, :]) ** 2).sum(-1))
        a = np.zeros((n + 3, n + 3))
        a[:n, :n] = k + regularization * np.eye(n)
        a[:n, n] = a[n, :n] = 1.0
        a[:n, n + 1:] = p
        a[n + 1:, :n] = p.T
        b = np.zeros((n + 3, 2))
        b[:n] = dst
        self.points = p
        self.coef = np.linalg.solve(a, b)

    def __call__(self, pts: np.ndarray) -> np.ndarray:
        """Evaluate at ``(M, 2)`` points; returns ``(M, 2) float64``."""
        q = (np.asarray(pts, np.float64) - self.centre) / self.scale
        k = _tps_kernel(((q[:, None, :] - self.points[None, :, :]) ** 2).sum(-1))
        n = len(self.points)
        return k @ self.coef[:n] + self.coef[n] + q @ self.coef[n + 1:]


def dense_map(fn, height: int, width: int, step: int = 4, pre: np.ndarray | None = None
              ) -> tuple[np.ndarray, np.ndarray]:
    """Sample a smooth point function on a coarse grid and interpolate it to every pixel.

    Args:
        fn: maps ``(M, 2)`` points to ``(M, 2)`` points (e.g. a :class:`ThinPlateSpline`).
        height, width: output map size.
        step: coarse grid spacing in pixels (the function must be smooth at that scale).
        pre: optional ``(2, 3)`` affine applied to pixel coordinates before ``fn``.

    Returns:
        ``(map_x, map_y)``, each ``(height, width) float32``, ready for ``cv2.remap``.
    """
    gx = np.arange(0, width + step, step, dtype=np.float64)
    gy = np.arange(0, height + step, step, dtype=np.float64)
    xx, yy = np.meshgrid(gx, gy)
    pts = np.stack([xx.ravel(), yy.ravel()], 1)
    if pre is not None:
        pts = apply_affine(pre, pts)
    vals = fn(pts).reshape(len(gy), len(gx), 2).astype(np.float32)
    fx, fy = np.meshgrid(np.arange(width, dtype=np.float32) / step,
                         np.arange(height, dtype=np.float32) / step)
    coarse = np.ascontiguousarray(vals)
    mx = cv2.remap(coarse[..., 0], fx, fy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    my = cv2.remap(coarse[..., 1], fx, fy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return mx, my
