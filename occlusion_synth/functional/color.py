"""Colour and lighting harmonisation of an occluder toward the face area it covers.

A partial LAB statistics transfer: the occluder's luminance mean and contrast move part of
the way (``strength``) toward those of the covered face pixels, the face's low-frequency
shading (one side darker than the other) is imprinted on the occluder, and the chroma moves
only a little (``chroma_strength``), so the scene's colour cast is picked up while a blue mask
stays blue and a red apple stays red.
"""
from __future__ import annotations

import cv2
import numpy as np


def _weighted_stats(values: np.ndarray, weights: np.ndarray) -> tuple[float, float]:
    wsum = float(weights.sum())
    mean = float((values * weights).sum() / wsum)
    var = float((((values - mean) ** 2) * weights).sum() / wsum)
    return mean, float(np.sqrt(max(var, 1e-6)))


def harmonize(rgb: np.ndarray, alpha: np.ndarray, background: np.ndarray, strength: float = 0.35,
              chroma_strength: float = 0.1, shading: float = 0.5,
              region: np.ndarray | None = None) -> np.ndarray:
    """Harmonise an occluder patch with the face under it.

    Args:
        rgb: ``(h, w, 3) float32`` occluder colour, 0..255.
        alpha: ``(h, w) float32`` occluder alpha, 0..1.
        background: ``(h, w, 3) uint8`` image pixels under the patch.
        strength: fraction of the luminance mean/contrast gap closed (0 = off).
        chroma_strength: fraction of the a*/b* mean gap closed.
        shading: how strongly the face's smooth shading modulates the occluder (0 = off).
        region: optional ``(h, w)`` bool/uint8: which background pixels are face (others are
            ignored for the statistics when at least 16 remain).

    Returns:
        ``(h, w, 3) float32`` harmonised colour, 0..255.
    """
    cover = alpha >= 0.5
    if region is not None and np.count_nonzero(cover & (region > 0)) >= 16:
        cover = cover & (region > 0)
    if np.count_nonzero(cover) < 16 or np.count_nonzero(alpha > 0) < 16:
        return rgb
    fg = cv2.cvtColor(np.clip(rgb / 255.0, 0, 1).astype(np.float32), cv2.COLOR_RGB2LAB)
    bg = cv2.cvtColor(background.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)
    w_fg = alpha.astype(np.float64)
    w_bg = cover.astype(np.float64)
    out = fg.copy()
    mu_o, sd_o = _weighted_stats(fg[..., 0], w_fg)
    mu_f, sd_f = _weighted_stats(bg[..., 0], w_bg)
    ratio = float(np.clip(sd_f / sd_o, 0.75, 1.25)) ** strength
    lum = mu_o + (fg[..., 0] - mu_o) * ratio + strength * (mu_f - mu_o)
    if shading > 0:
        # smooth face luminance relative to its mean: the lighting gradient across the patch
        sigma = max(2.0, 0.25 * max(alpha.shape))
        weight = cv2.GaussianBlur(w_bg.astype(np.float32), (0, 0), sigma) + 1e-6
        smooth = cv2.GaussianBlur((bg[..., 0] * w_bg).astype(np.float32), (0, 0), sigma) / weight
        rel = np.clip(smooth / max(mu_f, 1e-3), 0.6, 1.4)
        lum = lum * rel ** shading
    out[..., 0] = np.clip(lum, 0, 100)
    for c in (1, 2):
        mo, _ = _weighted_stats(fg[..., c], w_fg)
        mf, _ = _weighted_stats(bg[..., c], w_bg)
        out[..., c] = fg[..., c] + chroma_strength * (mf - mo)
    back = cv2.cvtColor(out, cv2.COLOR_LAB2RGB)
    return np.clip(back * 255.0, 0, 255).astype(np.float32)
