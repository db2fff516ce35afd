"""Filters on a rendered occluder patch for harmonisation: a premultiplied (normalised) blur
that carries per-channel gains and shading, the fading of too-fine texture to the photo's grain,
a highlight roll-off, and grain cut from a fixed noise tile. Colour is ``(h, w, 3) float32``
0..255 (straight), alpha ``(h, w) float32`` 0..1. OpenCV calls on whole patches: per-channel
numpy broadcasting and mixed-channel merges cost several times more on these sizes.
"""
from __future__ import annotations

import functools
from typing import Optional

import cv2
import numpy as np

from .masks import FOOTPRINT_EPS
from .photo_stats import immerkaer, interior, lattice_sample, luma2d, mad_sigma, noise_from

TEXTURE_SIGMA = 1.0              # smoothing the occluder's too-fine texture is faded toward
GRAIN_TILE = 512                 # side of the fixed noise field grain windows are cut from
GRAIN_TILE_SEED = 11
# cv2.THRESH_TOZERO keeps values > thresh: this keeps alpha >= FOOTPRINT_EPS
_FOOTPRINT_CUT = float(np.nextafter(np.float32(FOOTPRINT_EPS), np.float32(0)))


def clip255(x: np.ndarray) -> np.ndarray:
    """Clip float32 ``x`` to 0..255 in place (two OpenCV thresholds: faster than np.clip)."""
    cv2.threshold(x, 255.0, 255.0, cv2.THRESH_TRUNC, dst=x)
    cv2.threshold(x, 0.0, 0.0, cv2.THRESH_TOZERO, dst=x)
    return x


def gaussian(x: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur, kernel cut at 2.5 sigma (OpenCV's float default reaches 4), outside = 0."""
    k = 2 * int(np.ceil(2.5 * sigma)) + 1
    return cv2.GaussianBlur(x, (k, k), float(sigma), borderType=cv2.BORDER_CONSTANT)


def merge3(plane: np.ndarray) -> np.ndarray:
    """``(h, w)`` -> ``(h, w, 3)``, the plane on every channel."""
    return cv2.merge([plane, plane, plane])


def channel_weights(weight: Optional[np.ndarray], chan: tuple, shape) -> list:
    """Per-channel ``(h, w)`` multipliers: ``weight`` (None: ones) times each of ``chan``."""
    if weight is None:
        weight = np.ones(shape, np.float32)
    return [weight if c == 1.0 else weight * np.float32(c) for c in chan]


def normalised_blur(rgb: np.ndarray, alpha: np.ndarray, sigma: float, pads=(0, 0, 0, 0),
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
                      cv2.merge(channel_weights(weight, chan, alpha.shape) + [alpha]))
    if any(pads):
        pm = cv2.copyMakeBorder(pm, *pads, cv2.BORDER_CONSTANT, value=0)
    pm = gaussian(pm, sigma)
    a = cv2.extractChannel(pm, 3)
    colour = cv2.divide(cv2.cvtColor(pm, cv2.COLOR_RGBA2RGB), merge3(cv2.max(a, 1e-6)))
    return colour, a


def blur_patch(rgb, alpha, box, shape, sigma, shade=None, chan=(1.0, 1.0, 1.0)):
    """Blur premultiplied colour (times ``shade`` and ``chan``, see :func:`normalised_blur`)
    and alpha by ``sigma``; the patch grows by ``3 sigma``. The colour is not clipped."""
    pad = int(np.ceil(3 * sigma))
    x0, y0, x1, y1 = box
    top, left = min(pad, y0), min(pad, x0)
    bottom, right = min(pad, int(shape[0]) - y1), min(pad, int(shape[1]) - x1)
    out, a = normalised_blur(rgb, alpha, sigma, (top, bottom, left, right), shade, chan)
    cv2.threshold(a, 1.0, 1.0, cv2.THRESH_TRUNC, dst=a)
    cv2.threshold(a, _FOOTPRINT_CUT, 0, cv2.THRESH_TOZERO, dst=a)
    return out, a, (x0 - left, y0 - top, x1 + right, y1 + bottom)


def cap_texture(rgb: np.ndarray, alpha: np.ndarray, level: float):
    """Fade the occluder's fine luma texture toward its smoothing inside the occluder until its
    Immerkaer noise reading (in the fully opaque part) is at most ``level``; the same amount is
    taken off the three channels (grey stays grey, colour detail is kept).

    Returns:
        ``(rgb, reading)``: the (possibly faded) colour and its noise reading afterwards.
    """
    opaque = (alpha >= 0.999).view(np.uint8)
    if min(alpha.shape) < 3 or cv2.countNonZero(opaque) < 16:
        return rgb, 0.0
    valid = interior(opaque, alpha.shape)
    y = luma2d(rgb)
    resp = immerkaer(y)
    n = int(np.count_nonzero(valid))
    own = noise_from(resp, valid)
    if own <= level:
        return rgb, own
    # the fine detail: luma minus its normalised Gaussian smoothing (the outside does not leak in)
    both = gaussian(cv2.merge([y * alpha, alpha]), TEXTURE_SIGMA)
    detail = y - cv2.extractChannel(both, 0) / np.maximum(cv2.extractChannel(both, 1), 1e-6)
    # Immerkaer is linear: the faded luma y - (1 - t) detail reads |r - (1 - t) r_d|
    r_d = lattice_sample(immerkaer(detail), valid, n)
    r = lattice_sample(resp, valid, n)
    t, reading = 1.0, own
    for _ in range(4):
        t = min(max(t * level / max(reading, 1e-6), 0.0), 1.0)
        reading = mad_sigma(r - np.float32(1.0 - t) * r_d)
        if reading <= 1.02 * level or t == 0.0:
            break
    return cv2.subtract(rgb, merge3(detail * np.float32(1.0 - t))), reading


def roll_off(rgb: np.ndarray, room: float) -> None:
    """Roll the colour's highlights off smoothly (a camera tone curve's shoulder) below
    ``255 - room``, in place (``rgb`` C-contiguous float32), so grain added next is not clipped
    away on a white occluder; values up to ``255 - 2 room`` are untouched (slope 1 at the knee)."""
    flat = rgb.reshape(rgb.shape[0], -1)
    assert np.shares_memory(flat, rgb), "roll_off works in place on a C-contiguous array"
    knee = 255.0 - 2.0 * room
    if cv2.minMaxLoc(flat)[1] > knee:
        over = flat > knee
        flat[over] = knee + room * (1.0 - np.exp((knee - flat[over]) / room))


@functools.lru_cache(maxsize=1)
def grain_tile() -> np.ndarray:
    """A fixed ``(GRAIN_TILE, GRAIN_TILE) float32`` standard normal field (made once per process,
    read-only)."""
    tile = np.random.default_rng(GRAIN_TILE_SEED).standard_normal((GRAIN_TILE, GRAIN_TILE), dtype=np.float32)
    tile.flags.writeable = False
    return tile


def grain_field(shape, seed: int) -> np.ndarray:
    """``(h, w) float32`` standard normal noise from ``seed``: a read-only window of the fixed
    tile at an offset drawn from the seed (drawing a fresh field per occluder cost more than the
    rest of the grain step); a patch larger than the tile gets its own field."""
    h, w = int(shape[0]), int(shape[1])
    seed = int(seed)
    if h > GRAIN_TILE or w > GRAIN_TILE:
        return np.random.default_rng(seed).standard_normal((h, w), dtype=np.float32)
    rows = GRAIN_TILE - h + 1
    oy, ox = seed % rows, (seed // rows) % (GRAIN_TILE - w + 1)
    return grain_tile()[oy:oy + h, ox:ox + w]
