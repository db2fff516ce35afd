"""Harmonise an occluder with the photo around it: light, colour cast, grey, blur, grain, skin tone.

Pure numpy/cv2 kernels. :func:`measure_scene` reads the photo around a placement once (context:
the face region inside the occluder box grown by half its size each side) and returns a
:class:`SceneStats`; :func:`harmonise_occluder` applies it to a rendered occluder patch. All statistics
come from the *unoccluded* photo (and the occluder's own alpha), so replaying recorded params on
the same photo gives the same bytes.

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
  blurred by ``s`` and then by ``b`` is ``s / sqrt(s**2 + b**2)``) in a ``BLUR_WINDOW`` square
  under the box; the occluder is blurred by ``sqrt(s_photo**2 - RENDER_BLUR**2)``,
  ``RENDER_BLUR`` being what the estimator reads on a freshly rendered template edge
  (premultiplied, so no dark fringe; the patch grows to hold the soft edge).
* **grain**: the noise level of the face the occluder leaves visible (in a ``GRAIN_WINDOW``
  square around the box; the face under the box when too little is visible) is read with
  Immerkaer's Laplacian-difference operator (median-robust), the same reading the occluder's own
  grain is compared with. A template whose fine texture (cloth patterns, crumbs) reads above
  it is first faded toward its own smoothing, luma only (``TEXTURE_SIGMA``): the camera and JPEG
  that flattened the face's pixel-level detail would have flattened the object's too. Luma noise
  (the same on the three channels, so grey stays grey) then fills up to that level, from a
  recorded seed (a window of a fixed noise tile); highlights are rolled off ``GRAIN_HEADROOM``
  grain sigmas below white first, so a white mask keeps its grain instead of clipping it away.

The steps are fused for speed (one core, about 0.8 ms on a 100 px face): the per-channel gains
(light x cast, skin tone, or the grey tint) and the shading multiply the colour in one pass, the
blur's premultiplication when there is one; statistics are read once, on a half-resolution
lattice of the context or in small windows (:mod:`.photo_stats`, :mod:`.patch_filters`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import cv2
import numpy as np

from .patch_filters import blur_patch, cap_texture, channel_weights, clip255, grain_field, merge3, roll_off
# is_grey, luma and noise_sigma are re-exported (occlusion_synth.functional imports them from here)
from .photo_stats import (GREY_SPREAD, LUMA_WEIGHTS, edge_blur, immerkaer, interior, is_grey, luma,  # noqa: F401
                          luma2d, noise_from, noise_sigma, quantile)

LIGHT_REFERENCE = 170.0          # p75 luma (0..255) of a well-lit face
LIGHT_EXPONENT = 0.85
LIGHT_GAIN_RANGE = (0.05, 1.1)
SHADING_EXPONENT = 0.5
SHADING_RANGE = (0.6, 1.4)
# mean (R, G, B) / luma of ordinary skin in neutral light (measured on the demo photos' faces)
SKIN_CHANNEL_RATIO = (1.19, 0.94, 0.81)
CAST_STRENGTH = 0.5
CAST_GAIN_RANGE = (0.85, 1.18)
MAX_BLUR = 3.0
# what edge_blur reads on rendered shipped templates (median; 10-90 % range 0.73-1.05)
RENDER_BLUR = 0.85
MIN_CONTEXT = 32                 # pixels needed for context statistics
GRAIN_WINDOW = 128               # side of the square around the box the grain is read in
BLUR_WINDOW = 48                 # side of the square at its centre the edge blur is read in
GRAIN_HEADROOM = 2.0             # grain sigmas kept free below white


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
    light = (quantile(y_sub[sub_sel > 0], 0.75) / LIGHT_REFERENCE) ** LIGHT_EXPONENT
    light = min(max(light, LIGHT_GAIN_RANGE[0]), LIGHT_GAIN_RANGE[1])
    mean_c = cv2.mean(sub, sub_sel)[:3]
    mean_y = max(sum(float(c) * float(k) for c, k in zip(mean_c, LUMA_WEIGHTS)), 1.0)
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
    y_quad = luma2d(image[quad])
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
    resp = immerkaer(y_quad)
    visible = face_quad.copy()
    under = visible[max(0, y0 - qy0):max(0, y1 - qy0), max(0, x0 - qx0):max(0, x1 - qx0)]
    if footprint is None:
        under[:] = False
    else:
        fy0, fx0 = max(0, qy0 - y0), max(0, qx0 - x0)
        under &= np.asarray(footprint)[fy0:fy0 + under.shape[0], fx0:fx0 + under.shape[1]] <= 0
    valid = interior(visible, visible.shape)
    if np.count_nonzero(valid) >= 4 * MIN_CONTEXT:
        noise = noise_from(resp, valid)
    else:
        noise = noise_from(resp[win], interior(None if full else gsel, gsel.shape))
    skin = None
    if skin_mask is not None:
        sx, sy, sw, sh = cv2.boundingRect(np.asarray(skin_mask, np.uint8))
        crop, pixels = np.asarray(skin_mask[sy:sy + sh, sx:sx + sw]) > 0, image[sy:sy + sh, sx:sx + sw]
        n = np.count_nonzero(crop)
        if n >= 4 * MIN_CONTEXT:  # a large skin area: every second pixel of it
            crop, pixels = crop[::2, ::2], pixels[::2, ::2]
        if n >= 8:
            skin = _median_colour(pixels[crop])
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
    total = max(cv2.sumElems(alpha)[0], 1e-6)
    weighted = cv2.sumElems(cv2.multiply(rgb, merge3(alpha)))
    return np.asarray([min(max(t / max(w / total, 1.0), 0.05), 4.0) for t, w in zip(skin, weighted)],
                      np.float32)


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
        y = cv2.transform(rgb, (LUMA_WEIGHTS * np.asarray(gain, np.float32))[None, :]).reshape(a.shape)
        src, chan = merge3(y), tuple(float(v) for v in stats.tint)  # tint: ones for equal channels
    else:
        src, chan = rgb, gain
    shade = None
    if light:
        plane = stats.shading
        if plane is None:
            x0, y0, x1, y1 = box
            plane = _plane(luma2d(image[y0:y1, x0:x1]), None if region is None else region[y0:y1, x0:x1])
        shade = _shading(plane, a.shape)
    extra = float(np.sqrt(max(stats.blur ** 2 - RENDER_BLUR ** 2, 0.0))) if blur else 0.0
    if extra >= 0.3:
        out, a, box = blur_patch(src, a, box, image.shape[:2], extra, shade, chan)
    elif shade is None and chan == (1.0, 1.0, 1.0):
        out = src.copy()
    else:
        out = cv2.multiply(src, cv2.merge(channel_weights(shade, chan, a.shape)))
    if grain and stats.noise > 0:
        out, own = cap_texture(out, a, stats.noise)
        add = float(np.sqrt(max(stats.noise ** 2 - own ** 2, 0.0)))
        if add > 0.05:
            roll_off(out, GRAIN_HEADROOM * add)
            out = cv2.scaleAdd(merge3(grain_field(a.shape, noise_seed)), add, out)
    return clip255(out), a, box
