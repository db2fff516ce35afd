"""Soft alpha compositing with feathered edges and an optional soft drop shadow."""
from __future__ import annotations

import cv2
import numpy as np

from .masks import FOOTPRINT_EPS


def feather_alpha(alpha: np.ndarray, sigma: float) -> np.ndarray:
    """Soften the inside of the alpha edge: ``min(alpha, gaussian(alpha, sigma))``.

    Taking the minimum never spreads alpha outward, so the footprint (alpha > 0) does not grow
    and pixels outside it stay untouched; alphas below ``FOOTPRINT_EPS`` are zeroed so the
    footprint is crisp.

    Args:
        alpha: ``(h, w) float32`` in 0..1.
        sigma: Gaussian sigma in pixels; ``<= 0`` only applies the epsilon cut.
    """
    a = np.asarray(alpha, np.float32)
    if sigma > 0:
        blurred = cv2.GaussianBlur(a, (0, 0), sigmaX=float(sigma), borderType=cv2.BORDER_REPLICATE)
        a = np.minimum(a, blurred)
    return np.where(a < FOOTPRINT_EPS, 0.0, a).astype(np.float32)


def shadow_alpha(alpha: np.ndarray, box, shape: tuple[int, int], offset: tuple[float, float],
                 sigma: float, strength: float):
    """A soft shadow cast by the occluder: its alpha shifted by ``offset``, blurred and scaled.

    Args:
        alpha: ``(h, w) float32`` occluder alpha patch at ``box``.
        box: ``(x0, y0, x1, y1)`` of the patch in the image.
        shape: ``(H, W)`` of the image.
        offset: ``(dx, dy)`` shift in pixels.
        sigma: blur in pixels.
        strength: darkening at full shadow (0..1).

    Returns:
        ``(shadow, shadow_box)``: ``(h', w') float32`` darkening amount and its box, or ``None``.
    """
    h_img, w_img = int(shape[0]), int(shape[1])
    pad = int(np.ceil(3 * sigma + max(abs(offset[0]), abs(offset[1])))) + 1
    x0, y0, x1, y1 = box
    bx0, by0 = max(0, x0 - pad), max(0, y0 - pad)
    bx1, by1 = min(w_img, x1 + pad), min(h_img, y1 + pad)
    canvas = np.zeros((by1 - by0, bx1 - bx0), np.float32)
    canvas[y0 - by0:y1 - by0, x0 - bx0:x1 - bx0] = alpha
    m = np.float64([[1, 0, offset[0]], [0, 1, offset[1]]])
    shifted = cv2.warpAffine(canvas, m, (canvas.shape[1], canvas.shape[0]), flags=cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    if sigma > 0:
        shifted = cv2.GaussianBlur(shifted, (0, 0), sigmaX=float(sigma), borderType=cv2.BORDER_CONSTANT)
    shade = shifted * float(strength)
    shade = np.where(shade < FOOTPRINT_EPS, 0.0, shade).astype(np.float32)
    if not shade.any():
        return None
    return shade, (bx0, by0, bx1, by1)


def composite(image: np.ndarray, rgb: np.ndarray, alpha: np.ndarray, box, shadow=None) -> np.ndarray:
    """Alpha-blend an occluder patch over ``image`` (and darken under its shadow first).

    Args:
        image: ``(H, W, 3) uint8`` RGB background (not modified).
        rgb: ``(h, w, 3) float32`` straight occluder colour, 0..255 (finite everywhere).
        alpha: ``(h, w) float32`` final alpha, 0..1.
        box: ``(x0, y0, x1, y1)`` of the patch.
        shadow: optional ``(shade, shadow_box)`` from :func:`shadow_alpha`.

    Returns:
        ``(H, W, 3) uint8``; pixels with zero alpha and zero shadow are byte-identical to ``image``.
    """
    out = image.copy()
    if shadow is not None:
        shade, (sx0, sy0, sx1, sy1) = shadow
        region = out[sy0:sy1, sx0:sx1]
        dark = region.astype(np.float32) * (1.0 - shade[..., None])
        touched = shade > 0
        region[touched] = np.clip(np.rint(dark[touched]), 0, 255).astype(np.uint8)
    x0, y0, x1, y1 = box
    region = out[y0:y1, x0:x1]
    a = cv2.merge((alpha, alpha, alpha))  # OpenCV's per-element ops: ~1/3 less time than numpy's
    blended = cv2.add(cv2.multiply(region.astype(np.float32), cv2.subtract((1.0, 1.0, 1.0, 1.0), a)),
                      cv2.multiply(np.asarray(rgb, np.float32), a))
    np.rint(blended, out=blended)
    np.clip(blended, 0, 255, out=blended)
    # where alpha is 0 the blend is exactly the background (x * 1 + finite colour * 0 == x, and x
    # an integer), so the whole patch is assigned: 4x cheaper than a masked copy at 100 px
    region[...] = blended
    return out
