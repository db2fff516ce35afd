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
  grey stays grey) is added to the occluder up to that level, from a recorded seed. A template
  whose own fine texture (cloth patterns, crumbs, seeds) reads above the photo's noise level is
  first faded toward a smoothed copy of itself (normalised convolution inside the occluder,
  ``TEXTURE_SIGMA``) until it reads at that level: the camera and JPEG that flattened the face's
  pixel-level detail would have flattened the object's too.

The steps are fused for speed (about 100 px patches, one core): light, cast, skin tone and grey
are one per-pixel colour matrix, the shading multiplies it, the blur works on the premultiplied
patch, and every statistic is read once, in windows of at most ``GRAIN_WINDOW`` pixels.
"""
from __future__ import annotations

import functools
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
GRAIN_WINDOW = 128               # side of the square around the box the grain is read in
BLUR_WINDOW = 48                 # side of the square at its centre the edge blur is read in
SAMPLE_FULL = 2000               # from this many pixels on, quantiles read a 2 x 2 lattice
TEXTURE_SIGMA = 1.0              # smoothing the occluder's too-fine texture is faded toward
GRAIN_HEADROOM = 2.0             # grain sigmas kept free below white and above black
GRAIN_TILE = 512                 # side of the fixed noise field grain windows are cut from
GRAIN_TILE_SEED = 11
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)
_LUMA_ROW = _LUMA[None, :]
_IMMERKAER = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)
_MAD_TO_SIGMA = 1.0 / (0.6745 * 6.0)   # |N(0, 36 s^2)| has median 0.6745 * 6 s
# cv2.THRESH_TOZERO keeps values > thresh: this keeps alpha >= FOOTPRINT_EPS
_FOOTPRINT_CUT = float(np.nextafter(np.float32(FOOTPRINT_EPS), np.float32(0)))
_KERNEL3 = np.ones((3, 3), np.uint8)


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
        shading: ``(kx, ky, cx, cy)``: the face's light gradient under the box (relative luma
            change per pixel along x and y, around ``(cx, cy)`` in box pixels; zeros when
            flat or unmeasurable), or None when not measured.
    """

    light: float
    cast: tuple
    grey: bool
    tint: tuple
    blur: float
    noise: float
    skin: Optional[tuple] = None
    shading: Optional[tuple] = None


def luma(rgb: np.ndarray) -> np.ndarray:
    """``(..., 3)`` RGB -> ``(...)`` float32 BT.601 luma, same scale."""
    return np.asarray(rgb, np.float32) @ _LUMA


def _luma2d(rgb: np.ndarray) -> np.ndarray:
    """``(h, w, 3)`` RGB of any dtype -> ``(h, w) float32`` luma (OpenCV's float RGB2GRAY uses the
    same BT.601 weights)."""
    return cv2.cvtColor(np.ascontiguousarray(rgb, np.float32), cv2.COLOR_RGB2GRAY)


def _clip255(x: np.ndarray) -> np.ndarray:
    """Clip float32 ``x`` to 0..255 in place (two OpenCV thresholds: faster than np.clip)."""
    cv2.threshold(x, 255.0, 255.0, cv2.THRESH_TRUNC, dst=x)
    cv2.threshold(x, 0.0, 0.0, cv2.THRESH_TOZERO, dst=x)
    return x


def _gaussian(x: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur, kernel cut at 2.5 sigma (OpenCV's float default reaches 4), outside = 0."""
    k = 2 * int(np.ceil(2.5 * sigma)) + 1
    return cv2.GaussianBlur(x, (k, k), float(sigma), borderType=cv2.BORDER_CONSTANT)


def _merge3(plane: np.ndarray) -> np.ndarray:
    """``(h, w)`` -> ``(h, w, 3)``, the plane on every channel."""
    return cv2.merge([plane, plane, plane])


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


def _immerkaer(gray: np.ndarray) -> np.ndarray:
    """Signed Immerkaer response of ``(h, w) float32`` luma (linear in ``gray``)."""
    return cv2.filter2D(gray, cv2.CV_32F, _IMMERKAER, borderType=cv2.BORDER_REFLECT)


def _interior(mask: Optional[np.ndarray], shape) -> np.ndarray:
    """``(h, w)`` bool: pixels whose 3x3 neighbourhood lies inside the image and ``mask``."""
    if mask is None:
        valid = np.zeros(shape, bool)
        valid[1:-1, 1:-1] = True
        return valid
    m = np.asarray(mask)
    m = m.view(np.uint8) if m.dtype == bool else (m > 0).view(np.uint8)
    # a constant 0 border erodes the image's edge pixels too
    return cv2.erode(m, _KERNEL3, borderType=cv2.BORDER_CONSTANT, borderValue=0).view(bool)


def _sample(values: np.ndarray, valid: np.ndarray, n: int) -> np.ndarray:
    """``values[valid]`` (``n`` pixels); on a 2 x 2 lattice when ``n >= SAMPLE_FULL`` (a quarter
    of the pixels: the partition after it costs a quarter, a median moves by a few %)."""
    if n < SAMPLE_FULL:
        return values[valid]
    return values[::2, ::2][valid[::2, ::2]]


def _noise_from(resp: np.ndarray, valid: np.ndarray) -> float:
    """Noise sigma from the signed Immerkaer response ``(h, w)`` at the ``valid`` (bool) pixels."""
    n = int(np.count_nonzero(valid))
    if n < 8:
        return 0.0
    return _quantile(np.abs(_sample(resp, valid, n)), 0.5) * _MAD_TO_SIGMA


def noise_sigma(gray: np.ndarray, mask: Optional[np.ndarray] = None) -> float:
    """Noise level (sigma, same units as ``gray``) by Immerkaer's operator, median-robust.

    Args:
        gray: ``(h, w)`` float luma.
        mask: optional ``(h, w)`` bool: where to measure (3x3 neighbourhoods fully inside).
    """
    g = np.ascontiguousarray(gray, np.float32)
    if min(g.shape) < 3:
        return 0.0
    return _noise_from(_immerkaer(g), _interior(mask, g.shape))


def edge_blur(gray: np.ndarray, mask: Optional[np.ndarray] = None) -> float:
    """Edge blur (Gaussian sigma, pixels) of ``gray`` by re-blurring its strongest edges.

    Args:
        gray: ``(h, w)`` float luma.
        mask: optional ``(h, w)`` bool: where to look for edges.
    """
    g = np.ascontiguousarray(gray, np.float32)
    if min(g.shape) < 5:
        return 0.0
    # the photo and its re-blurred copy as two channels: one Sobel pass per direction
    k = 2 * int(np.ceil(3.0 * REBLUR_SIGMA)) + 1
    both = cv2.merge([g, cv2.GaussianBlur(g, (k, k), REBLUR_SIGMA)])
    mag = np.abs(cv2.Sobel(both, cv2.CV_32F, 1, 0))
    mag += np.abs(cv2.Sobel(both, cv2.CV_32F, 0, 1))     # L1 gradient magnitudes, (h, w, 2)
    valid = np.zeros(g.shape, bool)
    valid[2:-2, 2:-2] = True
    if mask is not None:
        valid &= np.asarray(mask, bool)
    n = int(np.count_nonzero(valid))
    if n < 16:
        return 0.0
    first = mag[..., 0]
    # the edges' crests: within 0.6 of the strongest gradients (the 99th percentile), at least 8
    # levels (none at all: no edges to read)
    strong = valid & (first >= max(0.6 * _quantile(_sample(first, valid, n), 0.99), 8.0))
    means = cv2.mean(mag, strong.view(np.uint8))
    if means[0] <= 0.0:
        return 0.0
    r = min(max(means[1] / means[0], 0.0), 0.995)
    return float(REBLUR_SIGMA * r / np.sqrt(1.0 - r * r))


def context_box(box, shape, grow: float = 0.5) -> tuple[int, int, int, int]:
    """``box`` grown by ``grow`` x its size on each side, clipped to ``shape`` ``(H, W)``."""
    x0, y0, x1, y1 = box
    dx, dy = int(round(grow * (x1 - x0))), int(round(grow * (y1 - y0)))
    return max(0, x0 - dx), max(0, y0 - dy), min(int(shape[1]), x1 + dx), min(int(shape[0]), y1 + dy)


def _half(x: np.ndarray) -> np.ndarray:
    """Every second row and column (pixel ``(2i, 2j)``) of ``x``: nearest-neighbour halving of the
    even-sized part, which OpenCV does far faster than a strided numpy copy."""
    h, w = x.shape[:2]
    even = x[:h - h % 2, :w - w % 2]
    return cv2.resize(even, ((w // 2) or 1, (h // 2) or 1), interpolation=cv2.INTER_NEAREST)


def measure_scene(image: np.ndarray, box, face_mask: Optional[np.ndarray] = None,
                  skin_mask: Optional[np.ndarray] = None, footprint: Optional[np.ndarray] = None) -> SceneStats:
    """Read light, cast, grey, blur, noise, shading (and skin) of the photo around ``box``.

    Args:
        image: ``(H, W, 3) uint8`` RGB photo without the occluder.
        box: ``(x0, y0, x1, y1)`` of the occluder patch.
        face_mask: optional ``(H, W)`` uint8/bool face region; the context is the face region
            inside the grown box (the whole face region, then the grown box, when too small);
            the shading is read on the face pixels under the box.
        skin_mask: optional ``(H, W)`` uint8/bool skin pixels (for hands' skin tone).
        footprint: optional ``(h, w)`` occluder alpha at ``box``: the grain is read on the face
            it leaves visible (without it: the face outside the box).
    """
    h, w = image.shape[:2]
    x0, y0, x1, y1 = box
    cx0, cy0, cx1, cy1 = context_box(box, (h, w))
    sel = None
    if face_mask is not None:
        local = np.asarray(face_mask[cy0:cy1, cx0:cx1]) > 0
        if np.count_nonzero(local) >= MIN_CONTEXT:
            sel = local
        elif np.count_nonzero(face_mask) >= MIN_CONTEXT:
            cx0, cy0, cx1, cy1 = 0, 0, w, h
            sel = np.asarray(face_mask) > 0
    patch = image[cy0:cy1, cx0:cx1]
    if sel is None:
        sel = np.ones(patch.shape[:2], bool)
    sel8 = sel.view(np.uint8)
    # light, cast, grey and shading from every second pixel of a large context
    step = 2 if np.count_nonzero(sel) >= 4 * MIN_CONTEXT and min(sel.shape) >= 4 else 1
    sub, sub_sel = (_half(patch), _half(sel8)) if step == 2 else (np.ascontiguousarray(patch), sel8)
    if not sub_sel.any():
        step, sub, sub_sel = 1, np.ascontiguousarray(patch), sel8
    y_sub = cv2.cvtColor(sub, cv2.COLOR_RGB2GRAY)        # rounded luma: plenty for these statistics
    light = (_quantile(y_sub[sub_sel > 0], 0.75) / LIGHT_REFERENCE) ** LIGHT_EXPONENT
    light = min(max(light, LIGHT_GAIN_RANGE[0]), LIGHT_GAIN_RANGE[1])
    mean_c = cv2.mean(sub, sub_sel)[:3]
    mean_y = max(sum(float(c) * float(k) for c, k in zip(mean_c, _LUMA)), 1.0)
    r, g, b = cv2.split(sub)
    spread = cv2.subtract(cv2.max(cv2.max(r, g), b), cv2.min(cv2.min(r, g), b))
    grey = bool(cv2.mean(spread, sub_sel)[0] < GREY_SPREAD)
    equal = cv2.minMaxLoc(spread, sub_sel)[1] == 0
    tint = (1.0, 1.0, 1.0) if equal else tuple(c / mean_y for c in mean_c)
    lo, hi = CAST_GAIN_RANGE
    cast = (1.0, 1.0, 1.0) if grey else tuple(
        min(max(max(c / mean_y / k, 1e-3) ** CAST_STRENGTH, lo), hi) for c, k in zip(mean_c, SKIN_CHANNEL_RATIO))
    # the shading plane on the face pixels under the box, on the same lattice
    bx0, by0, bx1, by1 = x0 - cx0, y0 - cy0, x1 - cx0, y1 - cy0
    jx0, jy0 = -(-bx0 // step), -(-by0 // step)                 # first lattice column/row in the box
    jx1, jy1 = -(-bx1 // step), -(-by1 // step)
    region = None if face_mask is None else sub_sel[jy0:jy1, jx0:jx1]
    kx, ky, pcx, pcy = _plane(y_sub[jy0:jy1, jx0:jx1], region, MIN_CONTEXT // (step * step))
    shading = (kx / step, ky / step, (pcx + jx0) * step - bx0, (pcy + jy0) * step - by0) if kx or ky else \
        (0.0, 0.0, 0.0, 0.0)
    # blur and grain are read in full resolution in a GRAIN_WINDOW square around the box (the
    # cost stays flat on large crops): the grain on the face the occluder leaves visible (the
    # grain its own must match; the face under the box when too little is left), the blur on the
    # face's edges in the central BLUR_WINDOW square (under the box: its strongest edges)
    side = GRAIN_WINDOW
    qx0 = min(max(0, (x0 + x1 - side) // 2), max(0, w - side))
    qy0 = min(max(0, (y0 + y1 - side) // 2), max(0, h - side))
    quad = (slice(qy0, qy0 + side), slice(qx0, qx0 + side))
    y_quad = _luma2d(image[quad])
    face_quad = np.asarray(face_mask[quad]) > 0 if face_mask is not None else None
    if face_quad is None or np.count_nonzero(face_quad) < MIN_CONTEXT:
        face_quad = np.ones(y_quad.shape, bool)
    qh, qw = y_quad.shape
    wy0, wx0 = max(0, (qh - BLUR_WINDOW) // 2), max(0, (qw - BLUR_WINDOW) // 2)
    win = (slice(wy0, wy0 + BLUR_WINDOW), slice(wx0, wx0 + BLUR_WINDOW))
    gsel = face_quad[win]
    full = bool(gsel.all())
    if not full and np.count_nonzero(gsel) < MIN_CONTEXT:
        win, gsel = (slice(None), slice(None)), face_quad
    blur = float(min(edge_blur(y_quad[win], None if full else gsel), MAX_BLUR))
    resp = _immerkaer(y_quad)
    visible = face_quad.copy()
    under = visible[max(0, y0 - qy0):max(0, y1 - qy0), max(0, x0 - qx0):max(0, x1 - qx0)]
    if footprint is None:
        under[:] = False
    else:
        fy0, fx0 = max(0, qy0 - y0), max(0, qx0 - x0)
        under &= np.asarray(footprint)[fy0:fy0 + under.shape[0], fx0:fx0 + under.shape[1]] <= 0
    if np.count_nonzero(visible) >= 4 * MIN_CONTEXT:
        noise = _noise_from(resp, _interior(visible, visible.shape))
    else:
        noise = _noise_from(resp[win], _interior(None if full else gsel, gsel.shape))
    skin = None
    if skin_mask is not None:
        sx, sy, sw, sh = cv2.boundingRect(np.asarray(skin_mask, np.uint8))
        crop = np.asarray(skin_mask[sy:sy + sh, sx:sx + sw]) > 0
        if np.count_nonzero(crop) >= 8:
            skin = _median_colour(image[sy:sy + sh, sx:sx + sw][crop])
    return SceneStats(light=light, cast=cast, grey=grey, tint=tint, blur=blur, noise=noise, skin=skin,
                      shading=shading)


def _median_colour(pixels: np.ndarray) -> tuple:
    """Per-channel median (as np.median: the mean of the two middle values for an even count) of
    ``(N, 3)`` pixels, by partition."""
    n = len(pixels)
    k = n // 2
    # channels as contiguous rows: a partition along a strided axis is many times slower
    part = np.partition(np.ascontiguousarray(pixels.T), (k - 1, k) if n % 2 == 0 else k, axis=1)
    mid = part[:, k].astype(np.float64)
    if n % 2 == 0:
        mid = (mid + part[:, k - 1]) / 2.0
    return tuple(float(v) for v in mid)


def _skin_gain(rgb: np.ndarray, alpha: np.ndarray, skin: tuple) -> np.ndarray:
    """``(3,) float32`` per-channel gains taking the alpha-weighted mean colour to ``skin``."""
    w = alpha.reshape(-1)
    mean = (w @ rgb.reshape(-1, 3)) / max(float(w.sum()), 1e-6)
    return np.clip(np.asarray(skin, np.float32) / np.maximum(mean, 1.0), 0.05, 4.0).astype(np.float32)


def skin_transfer(rgb: np.ndarray, alpha: np.ndarray, skin: tuple) -> np.ndarray:
    """Scale each channel so the occluder's alpha-weighted mean colour becomes ``skin``
    (von Kries: the template's own shading, outlines and nails keep their relative contrast).

    Args:
        rgb: ``(h, w, 3) float32`` 0..255; alpha: ``(h, w) float32`` weights.
        skin: ``(R, G, B)`` median skin colour from :func:`measure_scene`.
    """
    return rgb * _skin_gain(rgb, alpha, skin)


def _plane(y_under: np.ndarray, region: Optional[np.ndarray], min_count: int = MIN_CONTEXT) -> tuple:
    """The face's light gradient under a box: a plane fitted (least squares, from image moments)
    to ``(h, w)`` luma (uint8 or float32) at the ``region`` pixels (all when None), relative to
    their mean.

    Returns:
        ``(kx, ky, cx, cy)`` (see :class:`SceneStats`); zeros when there is nothing to fit.
    """
    if min(y_under.shape[:2]) < 2:
        return (0.0, 0.0, 0.0, 0.0)
    if region is None:
        inside, y = np.ones(y_under.shape, np.uint8), y_under
    else:
        inside = (np.asarray(region) > 0).view(np.uint8)
        y = y_under * inside
    m = cv2.moments(inside)                      # 0/1 weights: m00 is the pixel count
    n = m["m00"]
    sxx, sxy, syy = m["mu20"], m["mu11"], m["mu02"]
    det = sxx * syy - sxy * sxy
    if n < max(min_count, 3) or abs(det) < 1e-6:
        return (0.0, 0.0, 0.0, 0.0)
    my = cv2.moments(y)
    total = my["m00"]
    cx, cy, mean = m["m10"] / n, m["m01"] / n, max(total / n, 1.0)
    bx, by = my["m10"] - cx * total, my["m01"] - cy * total
    # the 2 x 2 normal equations, solved in closed form
    kx, ky = (syy * bx - sxy * by) / det / mean, (sxx * by - sxy * bx) / det / mean
    return (float(kx), float(ky), float(cx), float(cy))


def _shading(plane: tuple, shape) -> Optional[np.ndarray]:
    """``(h, w) float32`` light multiplier from a :func:`_plane` (clipped and softened), or None
    when flat."""
    kx, ky, cx, cy = plane
    if kx == 0.0 and ky == 0.0:
        return None
    h, w = shape
    rows = (np.arange(h, dtype=np.float32) - np.float32(cy)) * np.float32(ky)
    cols = (np.arange(w, dtype=np.float32) - np.float32(cx)) * np.float32(kx) + np.float32(1.0)
    plane = np.add.outer(rows, cols)
    lo, hi = SHADING_RANGE
    ends = (rows[0] + cols[0], rows[0] + cols[-1], rows[-1] + cols[0], rows[-1] + cols[-1])
    if min(ends) < lo or max(ends) > hi:  # a plane's extremes are at the corners
        np.minimum(np.maximum(plane, np.float32(lo), out=plane), np.float32(hi), out=plane)
    return cv2.pow(plane, SHADING_EXPONENT)


def _channel_weights(weight: Optional[np.ndarray], chan: tuple, shape) -> list:
    """Per-channel ``(h, w)`` multipliers: ``weight`` (None: ones) times each of ``chan``."""
    if weight is None:
        weight = np.ones(shape, np.float32)
    return [weight if c == 1.0 else weight * np.float32(c) for c in chan]


def _normalised_blur(rgb: np.ndarray, alpha: np.ndarray, sigma: float, pads=(0, 0, 0, 0),
                     shade: Optional[np.ndarray] = None, chan: tuple = (1.0, 1.0, 1.0)):
    """Gaussian blur of the alpha-premultiplied patch (outside it: transparent); the colour is
    multiplied by ``shade`` (``(h, w)``, optional) and the per-channel gains ``chan`` on the way
    (no pass of their own).

    Returns:
        ``(colour, alpha)``: the blurred premultiplied colour divided by the blurred alpha
        (``(h', w', 3)``, only meaningful where that alpha > 0) and the blurred alpha
        ``(h', w')``; the patch grows by ``pads`` = (top, bottom, left, right).
    """
    weight = alpha if shade is None else cv2.multiply(alpha, shade)
    # (r w, g w, b w, alpha): RGB2RGBA appends a channel of ones (OpenCV merges and splits of
    # mixed channel counts are far slower)
    pm = cv2.multiply(cv2.cvtColor(rgb, cv2.COLOR_RGB2RGBA),
                      cv2.merge(_channel_weights(weight, chan, alpha.shape) + [alpha]))
    if any(pads):
        pm = cv2.copyMakeBorder(pm, *pads, cv2.BORDER_CONSTANT, value=0)
    pm = _gaussian(pm, sigma)
    a = cv2.extractChannel(pm, 3)
    colour = cv2.divide(cv2.cvtColor(pm, cv2.COLOR_RGBA2RGB), _merge3(cv2.max(a, 1e-6)))
    return colour, a


def _blur_patch(rgb, alpha, box, shape, sigma, shade=None, chan=(1.0, 1.0, 1.0)):
    """Blur premultiplied colour (times ``shade`` and ``chan``, see :func:`_normalised_blur`)
    and alpha by ``sigma``; the patch grows by ``3 sigma``. The colour is not clipped."""
    pad = int(np.ceil(3 * sigma))
    x0, y0, x1, y1 = box
    top, left = min(pad, y0), min(pad, x0)
    bottom, right = min(pad, int(shape[0]) - y1), min(pad, int(shape[1]) - x1)
    out, a = _normalised_blur(rgb, alpha, sigma, (top, bottom, left, right), shade, chan)
    cv2.threshold(a, 1.0, 1.0, cv2.THRESH_TRUNC, dst=a)
    cv2.threshold(a, _FOOTPRINT_CUT, 0, cv2.THRESH_TOZERO, dst=a)
    return out, a, (x0 - left, y0 - top, x1 + right, y1 + bottom)


def _cap_texture(rgb: np.ndarray, alpha: np.ndarray, level: float):
    """Fade the occluder's fine luma texture toward its smoothing inside the occluder until its
    Immerkaer noise reading (in the fully opaque part) is at most ``level``; the same amount is
    taken off the three channels (grey stays grey, colour detail is kept).

    Returns:
        ``(rgb, reading)``: the (possibly faded) colour and its noise reading afterwards.
    """
    opaque = (alpha >= 0.999).view(np.uint8)
    if min(alpha.shape) < 3 or cv2.countNonZero(opaque) < 16:
        return rgb, 0.0
    valid = _interior(opaque, alpha.shape)
    y = _luma2d(rgb)
    resp = _immerkaer(y)
    n = int(np.count_nonzero(valid))
    own = _noise_from(resp, valid)
    if own <= level:
        return rgb, own
    # the fine detail: luma minus its normalised Gaussian smoothing (the outside does not leak in)
    k = 2 * int(np.ceil(2.5 * TEXTURE_SIGMA)) + 1
    both = cv2.GaussianBlur(cv2.merge([y * alpha, alpha]), (k, k), TEXTURE_SIGMA, borderType=cv2.BORDER_CONSTANT)
    detail = y - cv2.extractChannel(both, 0) / np.maximum(cv2.extractChannel(both, 1), 1e-6)
    # Immerkaer is linear: the faded luma y - (1 - t) detail reads |r - (1 - t) r_d|
    r_d = _sample(_immerkaer(detail), valid, n)
    r = _sample(resp, valid, n)
    t, reading = 1.0, own
    for _ in range(4):
        t = min(max(t * level / max(reading, 1e-6), 0.0), 1.0)
        reading = _quantile(np.abs(r - np.float32(1.0 - t) * r_d), 0.5) * _MAD_TO_SIGMA
        if reading <= 1.02 * level or t == 0.0:
            break
    return cv2.subtract(rgb, _merge3(detail * np.float32(1.0 - t))), reading


def _roll_off(rgb: np.ndarray, room: float) -> None:
    """Roll the colour's highlights off smoothly (a camera tone curve's shoulder) below
    ``255 - room``, in place, so grain added next is not clipped away on a white occluder; values
    up to ``255 - 2 room`` are untouched (slope 1 at the knee)."""
    flat = rgb.reshape(rgb.shape[0], -1)
    knee = 255.0 - 2.0 * room
    if cv2.minMaxLoc(flat)[1] > knee:
        over = flat > knee
        flat[over] = knee + room * (1.0 - np.exp((knee - flat[over]) / room))


@functools.lru_cache(maxsize=1)
def _grain_tile() -> np.ndarray:
    """A fixed ``(GRAIN_TILE, GRAIN_TILE) float32`` standard normal field (made once per process)."""
    return np.random.default_rng(GRAIN_TILE_SEED).standard_normal((GRAIN_TILE, GRAIN_TILE), dtype=np.float32)


def _grain(shape, seed: int) -> np.ndarray:
    """``(h, w) float32`` standard normal noise from ``seed``: a window of the fixed tile at an
    offset drawn from the seed (a patch larger than the tile gets its own field)."""
    h, w = int(shape[0]), int(shape[1])
    seed = int(seed)
    if h > GRAIN_TILE or w > GRAIN_TILE:
        return np.random.default_rng(seed).standard_normal((h, w), dtype=np.float32)
    rows = GRAIN_TILE - h + 1
    oy, ox = seed % rows, (seed // rows) % (GRAIN_TILE - w + 1)
    return _grain_tile()[oy:oy + h, ox:ox + w]


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
        region: optional ``(H, W)`` face region the shading is read in, used only when ``stats``
            does not carry it (:func:`measure_scene` reads it in its ``face_mask``).
        light, colour, grey, skin, blur, grain: which steps to apply (``skin`` replaces
            ``light`` and ``colour`` when the stats carry a skin colour).
        noise_seed: seed of the grain.

    Returns:
        ``(rgb, alpha, box)``, the patch possibly grown by the blur; alpha is unchanged when no
        blur is applied. The colour is only meaningful where alpha > 0.
    """
    rgb = np.ascontiguousarray(rgb, np.float32)
    a = np.ascontiguousarray(alpha, np.float32)
    # light, cast and skin tone are per-channel gains; grey replaces the colour by its luma
    # (after the gains) times the photo's tint. What stays per channel (gains or tint) and the
    # shading multiply the colour in one pass, the blur's premultiplication when there is one.
    gain = (1.0, 1.0, 1.0)
    if skin and stats.skin is not None:
        gain = tuple(float(v) for v in _skin_gain(rgb, a, stats.skin))
    elif light or colour:
        lift = stats.light if light else 1.0
        gain = tuple(float(c) * lift for c in (stats.cast if colour else (1.0, 1.0, 1.0)))
    if grey and stats.grey:
        y = cv2.transform(rgb, (_LUMA * np.asarray(gain, np.float32))[None, :]).reshape(a.shape)
        src, chan = _merge3(y), tuple(float(v) for v in stats.tint)  # tint: ones for equal channels
    else:
        src, chan = rgb, gain
    shade = None
    if light:
        plane = stats.shading
        if plane is None:
            x0, y0, x1, y1 = box
            plane = _plane(_luma2d(image[y0:y1, x0:x1]), None if region is None else region[y0:y1, x0:x1])
        shade = _shading(plane, a.shape)
    extra = float(np.sqrt(max(stats.blur ** 2 - RENDER_BLUR ** 2, 0.0))) if blur else 0.0
    if extra >= 0.3:
        out, a, box = _blur_patch(src, a, box, image.shape[:2], extra, shade, chan)
    elif shade is None and chan == (1.0, 1.0, 1.0):
        out = src.copy()
    else:
        out = cv2.multiply(src, cv2.merge(_channel_weights(shade, chan, a.shape)))
    if grain and stats.noise > 0:
        out, own = _cap_texture(out, a, stats.noise)
        add = float(np.sqrt(max(stats.noise ** 2 - own ** 2, 0.0)))
        if add > 0.05:
            _roll_off(out, GRAIN_HEADROOM * add)
            out = cv2.scaleAdd(_merge3(_grain(a.shape, noise_seed)), add, out)
    return _clip255(out), a, box
