"""Harmonise an occluder with the photo around it: light, colour cast, grey, blur, grain, skin tone.

Pure numpy/cv2 kernels. :func:`measure_scene` reads the photo around a placement once (context:
the face region inside the occluder box grown by half its size each side) and returns a
:class:`SceneStats`; :func:`harmonise_occluder` applies it to a rendered occluder patch. All statistics
come from the *unoccluded* photo, so replaying recorded params on the same photo gives the same
bytes.

* **light**: the occluder is multiplied by ``(p75 luma of the context / LIGHT_REFERENCE) **
  LIGHT_EXPONENT`` (clipped to ``LIGHT_GAIN_RANGE``), a well-lit face's 75th-percentile luma
  being about ``LIGHT_REFERENCE``. A photo darkened to 35 % gives a gain 0.35 ** 0.85 = 0.41
  times the original's (at most 0.53 when the original was clipped at the top of the range).
  The face's light gradient across the patch (one side darker: a plane fitted to the face's
  luma there) is imprinted on top.
* **colour cast** (von Kries): per-channel gains ``((context channel / context luma) /
  SKIN_CHANNEL_RATIO) ** CAST_STRENGTH``, clipped to ``CAST_GAIN_RANGE``: a blue-lit face
  makes the occluder bluer, an ordinary skin tone leaves it nearly unchanged.
* **grey**: when the context is grey (equal channels, or a mean channel spread under
  ``GREY_SPREAD`` levels) the occluder becomes its own luma times the context's tint (exactly
  equal channels when the photo's channels are equal), so grey in gives grey out.
* **skin tone** (hands): per-channel gains take the occluder's mean colour to the median colour
  of the face's skin (``skin_mask`` pixels, the cheeks); the skin already carries the photo's
  light and cast, so light and cast gains are not applied on top.
* **blur**: the photo's edge blur is estimated by re-blurring (the gradient ratio of a step edge
  blurred by ``s`` and then by ``b`` is ``s / sqrt(s**2 + b**2)``); the occluder is blurred by
  ``sqrt(s_photo**2 - RENDER_BLUR**2)``, ``RENDER_BLUR`` being what the estimator reads on a
  freshly rendered template edge (premultiplied, so no dark fringe; the patch grows to
  hold the soft edge).
* **grain**: the photo's noise level is estimated with Immerkaer's Laplacian-difference
  operator (robust: median absolute response); luma noise (the same on the three channels, so
  grey stays grey) is added to the occluder up to that level, from a recorded seed.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import cv2
import numpy as np

from .masks import FOOTPRINT_EPS

LIGHT_REFERENCE = 170.0          # p75 luma (0..255) of a well-lit face
LIGHT_EXPONENT = 0.85
LIGHT_GAIN_RANGE = (0.05, 1.1)
SHADING_EXPONENT = 0.5
SHADING_RANGE = (0.6, 1.4)
# mean (R, G, B) / luma of ordinary skin in neutral light (measured on the demo photos' faces)
SKIN_CHANNEL_RATIO = (1.19, 0.94, 0.81)
CAST_STRENGTH = 0.5
CAST_GAIN_RANGE = (0.85, 1.18)
GREY_SPREAD = 6.0                # mean max-min channel spread (levels) under which a photo is grey
REBLUR_SIGMA = 1.0
MAX_BLUR = 3.0
# what edge_blur reads on rendered shipped templates (median; 10-90 % range 0.73-1.05)
RENDER_BLUR = 0.85
MIN_CONTEXT = 32                 # pixels needed for context statistics
GRAIN_WINDOW = 64                # side of the window blur and grain are measured in
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)
_IMMERKAER = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)


@dataclass(frozen=True)
class SceneStats:
    """What the photo around a placement looks like (from :func:`measure_scene`).

    Attributes:
        light: luma gain for the occluder (1 = a well-lit face).
        cast: ``(3,)`` per-channel colour-cast gains.
        grey: the context is grey.
        tint: ``(3,)`` channel / luma of the context (exactly ones for equal channels).
        blur: edge blur of the photo (Gaussian sigma, pixels).
        noise: noise level of the photo (sigma, luma levels).
        skin: ``(R, G, B)`` median colour of the face's skin (cheeks), or None.
    """

    light: float
    cast: tuple
    grey: bool
    tint: tuple
    blur: float
    noise: float
    skin: Optional[tuple] = None


def luma(rgb: np.ndarray) -> np.ndarray:
    """``(..., 3)`` RGB -> ``(...)`` float32 BT.601 luma, same scale."""
    return np.asarray(rgb, np.float32) @ _LUMA


def _quantile(values: np.ndarray, q: float) -> float:
    """The ``q`` quantile (0..1, nearest rank) of a 1-D array; np.partition, not a full sort."""
    v = np.asarray(values).ravel()
    k = int(round(q * (v.size - 1)))
    return float(np.partition(v, k)[k])


def channel_spread(pixels: np.ndarray) -> np.ndarray:
    """``(..., 3)`` uint8 RGB -> ``(...)`` uint8 max - min over the channels."""
    p = np.asarray(pixels)
    r, g, b = p[..., 0], p[..., 1], p[..., 2]
    return np.maximum(np.maximum(r, g), b) - np.minimum(np.minimum(r, g), b)


def is_grey(pixels: np.ndarray) -> bool:
    """True when ``(N, 3)`` RGB pixels are grey: equal channels or mean spread < ``GREY_SPREAD``."""
    p = np.asarray(pixels)
    if p.size == 0:
        return False
    return bool(channel_spread(p).mean() < GREY_SPREAD)


def noise_sigma(gray: np.ndarray, mask: Optional[np.ndarray] = None) -> float:
    """Noise level (sigma, same units as ``gray``) by Immerkaer's operator, median-robust.

    Args:
        gray: ``(h, w)`` float luma.
        mask: optional ``(h, w)`` bool: where to measure (3x3 neighbourhoods fully inside).
    """
    g = np.asarray(gray, np.float32)
    if min(g.shape) < 3:
        return 0.0
    resp = np.abs(cv2.filter2D(g, cv2.CV_32F, _IMMERKAER, borderType=cv2.BORDER_REFLECT))
    valid = np.zeros(g.shape, bool)
    valid[1:-1, 1:-1] = True
    if mask is not None:
        valid &= cv2.erode(np.asarray(mask, np.uint8), np.ones((3, 3), np.uint8)) > 0
    vals = resp[valid]
    if vals.size < 8:
        return 0.0
    # |N(0, 36 s^2)| has median 0.6745 * 6 s
    return _quantile(vals if vals.size < 2000 else vals[::2], 0.5) / (0.6745 * 6.0)


def _gradient(g: np.ndarray) -> np.ndarray:
    """L1 gradient magnitude ``|d/dx| + |d/dy|`` (Sobel)."""
    return np.abs(cv2.Sobel(g, cv2.CV_32F, 1, 0)) + np.abs(cv2.Sobel(g, cv2.CV_32F, 0, 1))


def edge_blur(gray: np.ndarray, mask: Optional[np.ndarray] = None) -> float:
    """Edge blur (Gaussian sigma, pixels) of ``gray`` by re-blurring its strongest edges.

    Args:
        gray: ``(h, w)`` float luma.
        mask: optional ``(h, w)`` bool: where to look for edges.
    """
    g = np.asarray(gray, np.float32)
    if min(g.shape) < 5:
        return 0.0
    b = cv2.GaussianBlur(g, (0, 0), REBLUR_SIGMA)
    mag, mag_b = _gradient(g), _gradient(b)
    valid = np.zeros(g.shape, bool)
    valid[2:-2, 2:-2] = True
    if mask is not None:
        valid &= np.asarray(mask, bool)
    vals = mag[valid]
    if vals.size < 16 or vals.max() < 8.0:
        return 0.0
    # the edges' crests: within 0.6 of the strongest gradients (the 99th percentile)
    strong = valid & (mag >= max(0.6 * _quantile(vals if vals.size < 2000 else vals[::2], 0.99), 8.0))
    r = float(np.clip(mag_b[strong].sum() / max(mag[strong].sum(), 1e-6), 0.0, 0.995))
    return float(REBLUR_SIGMA * r / np.sqrt(1.0 - r * r))


def context_box(box, shape, grow: float = 0.5) -> tuple[int, int, int, int]:
    """``box`` grown by ``grow`` x its size on each side, clipped to ``shape`` ``(H, W)``."""
    x0, y0, x1, y1 = box
    dx, dy = int(round(grow * (x1 - x0))), int(round(grow * (y1 - y0)))
    return max(0, x0 - dx), max(0, y0 - dy), min(int(shape[1]), x1 + dx), min(int(shape[0]), y1 + dy)


def measure_scene(image: np.ndarray, box, face_mask: Optional[np.ndarray] = None,
                  skin_mask: Optional[np.ndarray] = None) -> SceneStats:
    """Read light, cast, grey, blur, noise (and skin) of the photo around ``box``.

    Args:
        image: ``(H, W, 3) uint8`` RGB photo without the occluder.
        box: ``(x0, y0, x1, y1)`` of the occluder patch.
        face_mask: optional ``(H, W)`` uint8/bool face region; the context is the face region
            inside the grown box (the whole face region, then the grown box, when too small).
        skin_mask: optional ``(H, W)`` uint8/bool skin pixels (for hands' skin tone).
    """
    h, w = image.shape[:2]
    cx0, cy0, cx1, cy1 = context_box(box, (h, w))
    patch = image[cy0:cy1, cx0:cx1]
    sel = np.ones(patch.shape[:2], bool)
    if face_mask is not None:
        local = np.asarray(face_mask[cy0:cy1, cx0:cx1]) > 0
        if np.count_nonzero(local) >= MIN_CONTEXT:
            sel = local
        elif np.count_nonzero(face_mask) >= MIN_CONTEXT:
            patch, sel = image, np.asarray(face_mask) > 0
    pix8 = patch[::2, ::2][sel[::2, ::2]] if np.count_nonzero(sel) >= 4 * MIN_CONTEXT else patch[sel]
    pix = pix8.astype(np.float32)
    y = pix @ _LUMA
    light = float(np.clip((_quantile(y, 0.75) / LIGHT_REFERENCE) ** LIGHT_EXPONENT, *LIGHT_GAIN_RANGE))
    mean_c, mean_y = pix.mean(0), max(float(y.mean()), 1.0)
    spread = channel_spread(pix8)
    grey = bool(spread.mean() < GREY_SPREAD)
    tint = (1.0, 1.0, 1.0) if not spread.any() else tuple(float(v) for v in mean_c / mean_y)
    ratio = mean_c / mean_y / np.asarray(SKIN_CHANNEL_RATIO, np.float32)
    cast = (1.0, 1.0, 1.0) if grey else tuple(
        float(v) for v in np.clip(np.maximum(ratio, 1e-3) ** CAST_STRENGTH, *CAST_GAIN_RANGE))
    # blur and grain are read in at most a GRAIN_WINDOW square at the context's centre (enough
    # pixels for both estimators, and the cost stays flat on large crops)
    ph, pw = sel.shape
    wy0, wx0 = max(0, (ph - GRAIN_WINDOW) // 2), max(0, (pw - GRAIN_WINDOW) // 2)
    win = (slice(wy0, wy0 + GRAIN_WINDOW), slice(wx0, wx0 + GRAIN_WINDOW))
    if np.count_nonzero(sel[win]) < MIN_CONTEXT:
        win = (slice(None), slice(None))
    gray = luma(patch[win])
    blur = float(min(edge_blur(gray, sel[win]), MAX_BLUR))
    noise = noise_sigma(gray, sel[win])
    skin = None
    if skin_mask is not None and np.count_nonzero(skin_mask) >= 8:
        sk = image[np.asarray(skin_mask) > 0]
        skin = tuple(float(v) for v in np.median(sk, axis=0))
    return SceneStats(light=light, cast=cast, grey=grey, tint=tint, blur=blur, noise=noise, skin=skin)


def skin_transfer(rgb: np.ndarray, alpha: np.ndarray, skin: tuple) -> np.ndarray:
    """Scale each channel so the occluder's alpha-weighted mean colour becomes ``skin``
    (von Kries: the template's own shading, outlines and nails keep their relative contrast).

    Args:
        rgb: ``(h, w, 3) float32`` 0..255; alpha: ``(h, w) float32`` weights.
        skin: ``(R, G, B)`` median skin colour from :func:`measure_scene`.
    """
    w = alpha.reshape(-1)
    mean = (w @ rgb.reshape(-1, 3)) / max(float(w.sum()), 1e-6)
    gain = np.asarray(skin, np.float32) / np.maximum(mean, 1.0).astype(np.float32)
    return rgb * np.clip(gain, 0.05, 4.0)


def _shading(under: np.ndarray, region: np.ndarray) -> np.ndarray:
    """The face's light gradient across the patch: a plane fitted (least squares, from image
    moments) to the luma of the face pixels under it, relative to their mean, clipped and
    softened; ``(h, w)`` float32."""
    wts = np.asarray(region, np.float32)
    m = cv2.moments(wts)
    if m["m00"] < MIN_CONTEXT:
        return np.ones(under.shape[:2], np.float32)
    my = cv2.moments(luma(under) * wts)
    n, total = m["m00"], my["m00"]
    cx, cy, mean = m["m10"] / n, m["m01"] / n, max(total / n, 1.0)
    normal = np.array([[m["mu20"], m["mu11"]], [m["mu11"], m["mu02"]]])
    rhs = np.array([my["m10"] - cx * total, my["m01"] - cy * total])
    if abs(np.linalg.det(normal)) < 1e-6:
        return np.ones(under.shape[:2], np.float32)
    kx, ky = np.linalg.solve(normal, rhs) / mean
    h, w = under.shape[:2]
    plane = (1.0 + (np.arange(h, dtype=np.float32)[:, None] - np.float32(cy)) * np.float32(ky)
             + (np.arange(w, dtype=np.float32)[None, :] - np.float32(cx)) * np.float32(kx))
    return np.clip(plane, *SHADING_RANGE) ** np.float32(SHADING_EXPONENT)


def _blur_patch(rgb, alpha, box, shape, sigma):
    """Blur premultiplied colour and alpha by ``sigma``; the patch grows by ``3 sigma``."""
    pad = int(np.ceil(3 * sigma))
    x0, y0, x1, y1 = box
    nx0, ny0 = max(0, x0 - pad), max(0, y0 - pad)
    nx1, ny1 = min(int(shape[1]), x1 + pad), min(int(shape[0]), y1 + pad)
    pm = np.zeros((ny1 - ny0, nx1 - nx0, 4), np.float32)
    sl = (slice(y0 - ny0, y1 - ny0), slice(x0 - nx0, x1 - nx0))
    pm[sl + (slice(0, 3),)] = rgb * alpha[..., None]
    pm[sl + (3,)] = alpha
    pm = cv2.GaussianBlur(pm, (0, 0), float(sigma), borderType=cv2.BORDER_CONSTANT)
    a = np.clip(pm[..., 3], 0.0, 1.0)
    off = a < FOOTPRINT_EPS
    a[off] = 0.0
    out = pm[..., :3] / np.maximum(a, 1e-6)[..., None]
    out[off] = 0.0
    np.clip(out, 0, 255, out=out)
    return out, a, (nx0, ny0, nx1, ny1)


def harmonise_occluder(rgb: np.ndarray, alpha: np.ndarray, box, image: np.ndarray, stats: SceneStats,
              region: Optional[np.ndarray] = None, *, light: bool = True, colour: bool = True,
              grey: bool = True, skin: bool = False, blur: bool = True, grain: bool = True,
              noise_seed: int = 0):
    """Make a rendered occluder patch take the photo's light, cast, grey, blur and grain.

    Args:
        rgb: ``(h, w, 3) float32`` straight occluder colour, 0..255.
        alpha: ``(h, w) float32`` final alpha, 0..1.
        box: ``(x0, y0, x1, y1)`` of the patch in ``image``.
        image: ``(H, W, 3) uint8`` RGB photo without the occluder.
        stats: from :func:`measure_scene` on the same photo and box.
        region: optional ``(H, W)`` face region (shading is read there only).
        light, colour, grey, skin, blur, grain: which steps to apply (``skin`` replaces
            ``light`` and ``colour`` when the stats carry a skin colour).
        noise_seed: seed of the grain.

    Returns:
        ``(rgb, alpha, box)``, the patch possibly grown by the blur; alpha is unchanged when no
        blur is applied.
    """
    x0, y0, x1, y1 = box
    out = np.asarray(rgb, np.float32)
    a = np.asarray(alpha, np.float32)
    if skin and stats.skin is not None:
        out = skin_transfer(out, a, stats.skin)
    elif light or colour:
        gain = np.asarray(stats.cast if colour else (1.0, 1.0, 1.0), np.float32)
        out = out * (gain * (stats.light if light else 1.0))
    if light:
        under = image[y0:y1, x0:x1]
        reg = np.ones(under.shape[:2], bool) if region is None else np.asarray(region[y0:y1, x0:x1]) > 0
        out = out * _shading(under, reg)[..., None]
    if grey and stats.grey:
        out = luma(out)[..., None] * np.asarray(stats.tint, np.float32)
    out = np.clip(out, 0, 255).astype(np.float32)
    if blur and stats.blur > 0:
        extra = float(np.sqrt(max(stats.blur ** 2 - RENDER_BLUR ** 2, 0.0)))
        if extra >= 0.3:
            out, a, box = _blur_patch(out, a, box, image.shape[:2], extra)
    if grain and stats.noise > 0:
        inside = a >= 0.999
        own = noise_sigma(luma(out), inside) if np.count_nonzero(inside) >= 16 else 0.0
        add = float(np.sqrt(max(stats.noise ** 2 - own ** 2, 0.0)))
        if add > 0.05:
            noise = np.random.default_rng(int(noise_seed)).standard_normal(a.shape, dtype=np.float32)
            out = np.clip(out + (add * noise)[..., None], 0, 255).astype(np.float32)
    return out, a, box
