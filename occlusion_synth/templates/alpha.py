"""Small RGBA kernels shared by the template loader and the template builders.

Convention (see docs/templates.md): templates are *straight* (non-premultiplied) alpha, and the RGB
of every fully transparent pixel is the colour of the nearest pixel with alpha > 0 ("edge bleed").
Bilinear/bicubic warps of straight-alpha images then never pull black or stray colours into the
soft edge, and premultiplying gives the same result as before the bleed.
"""
from __future__ import annotations

import numpy as np


def bleed_transparent(rgba: np.ndarray) -> np.ndarray:
    """Set the RGB of fully transparent pixels to the colour of the nearest visible pixel.

    Args:
        rgba: ``(H, W, 4) uint8`` straight alpha.

    Returns:
        A new ``(H, W, 4) uint8`` array; alpha and visible pixels unchanged. An all-transparent
        input gets RGB 0 everywhere.
    """
    from scipy import ndimage

    out = np.array(rgba, dtype=np.uint8, copy=True)
    hidden = out[..., 3] == 0
    if not hidden.any():
        return out
    if hidden.all():
        out[..., :3] = 0
        return out
    # index of the nearest visible (alpha > 0) pixel for every pixel (no distances: not needed)
    iy, ix = ndimage.distance_transform_edt(hidden, return_distances=False, return_indices=True)
    w = out.shape[1]
    flat = out.reshape(-1, 4)
    where = np.flatnonzero(hidden)
    # one flat gather instead of 2-D fancy indexing: same pixels, ~5x faster on 240 px templates
    flat[where, :3] = flat[iy.ravel()[where] * w + ix.ravel()[where], :3]
    return out


def premultiply(rgba: np.ndarray) -> np.ndarray:
    """``(H, W, 4) uint8`` straight alpha -> ``(H, W, 4) float32`` premultiplied in [0, 1]."""
    f = rgba.astype(np.float32) / 255.0
    f[..., :3] *= f[..., 3:4]
    return f


def unpremultiply(premul: np.ndarray) -> np.ndarray:
    """``(H, W, 4) float32`` premultiplied in [0, 1] -> ``(H, W, 4) uint8`` straight alpha."""
    a = np.clip(premul[..., 3:4], 0.0, 1.0)
    rgb = np.where(a > 1e-6, premul[..., :3] / np.maximum(a, 1e-6), 0.0)
    out = np.concatenate([np.clip(rgb, 0.0, 1.0), a], axis=-1)
    return (out * 255.0 + 0.5).astype(np.uint8)


def resize_rgba(rgba: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize straight-alpha RGBA in premultiplied space (no dark or coloured fringes).

    Args:
        rgba: ``(H, W, 4) uint8`` straight alpha.
        size: target ``(width, height)``.

    Returns:
        ``(height, width, 4) uint8`` straight alpha, transparent RGB bled.
    """
    import cv2

    w, h = size
    src_h, src_w = rgba.shape[:2]
    interp = cv2.INTER_AREA if (w < src_w and h < src_h) else cv2.INTER_CUBIC
    pm = cv2.resize(premultiply(rgba), (int(w), int(h)), interpolation=interp)
    return bleed_transparent(unpremultiply(np.clip(pm, 0.0, 1.0)))


def alpha_centroid(alpha: np.ndarray) -> tuple[float, float]:
    """Alpha-weighted centroid ``(x, y)`` of an ``(H, W) uint8`` alpha map (image centre if empty)."""
    a = alpha.astype(np.float64)
    total = a.sum()
    h, w = alpha.shape
    if total <= 0:
        return ((w - 1) / 2.0, (h - 1) / 2.0)
    ys, xs = np.indices(alpha.shape, dtype=np.float64)
    return (float((xs * a).sum() / total), float((ys * a).sum() / total))


def alpha_bbox(alpha: np.ndarray, threshold: int = 0) -> tuple[int, int, int, int] | None:
    """Bounding box ``(x0, y0, x1, y1)`` (exclusive end) of pixels with alpha > threshold."""
    ys, xs = np.nonzero(alpha > threshold)
    if ys.size == 0:
        return None
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def crop_to_alpha(rgba: np.ndarray, pad: int) -> tuple[np.ndarray, tuple[int, int]]:
    """Crop to the alpha bounding box plus ``pad`` transparent pixels on each side.

    Returns:
        The cropped ``(h, w, 4) uint8`` image and the ``(x, y)`` offset of the crop's origin in the
        input (so input point p maps to ``p - offset + pad``).
    """
    box = alpha_bbox(rgba[..., 3])
    if box is None:
        raise ValueError("cannot crop an empty (fully transparent) image")
    x0, y0, x1, y1 = box
    crop = rgba[y0:y1, x0:x1]
    out = np.zeros((y1 - y0 + 2 * pad, x1 - x0 + 2 * pad, 4), np.uint8)
    out[pad:pad + crop.shape[0], pad:pad + crop.shape[1]] = crop
    return out, (x0, y0)


def soft_edge_width(alpha: np.ndarray) -> float:
    """Fraction of the visible footprint whose alpha is strictly between 0 and 255.

    Used by validation: a hard-edged template (no partial alpha at all) pastes with jagged edges.
    """
    visible = alpha > 0
    n = int(visible.sum())
    if n == 0:
        return 0.0
    return float(((alpha > 0) & (alpha < 255)).sum()) / n


def keep_main_parts(fg: np.ndarray, min_fraction: float = 0.15) -> np.ndarray:
    """Drop specks: keep the 8-connected parts of the binary ``fg`` ``(h, w) uint8`` whose area is
    at least ``min_fraction`` of the largest part. Returns ``(h, w) uint8`` 0/1."""
    import cv2

    n, labels, stats, _ = cv2.connectedComponentsWithStats(fg, connectivity=8)
    if n <= 2:
        return fg
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = np.zeros(n, bool)
    keep[1:] = areas >= min_fraction * areas.max()
    return keep[labels].astype(np.uint8)
