"""Photo statistics for harmonisation: luma, the grey test, the noise level (Immerkaer's
operator, median-robust) and the edge blur (re-blurring), read on masked regions of ``(h, w)``
float32 luma. Pure numpy/cv2. Quantiles of large regions are read on a 2 x 2 lattice
(``SAMPLE_FULL``), so the cost stays a fraction of a millisecond on 100 px faces.
"""
from __future__ import annotations

from typing import Optional

import cv2
import numpy as np

GREY_SPREAD = 6.0                # mean max-min channel spread (levels) under which a photo is grey
REBLUR_SIGMA = 1.0
SAMPLE_FULL = 2000               # from this many pixels on, quantiles read a 2 x 2 lattice
LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114], np.float32)
_IMMERKAER = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)
_MAD_TO_SIGMA = 1.0 / (0.6745 * 6.0)   # |N(0, 36 s^2)| has median 0.6745 * 6 s
_KERNEL3 = np.ones((3, 3), np.uint8)


def luma(rgb: np.ndarray) -> np.ndarray:
    """``(..., 3)`` RGB -> ``(...)`` float32 BT.601 luma, same scale."""
    return np.asarray(rgb, np.float32) @ LUMA_WEIGHTS


def luma2d(rgb: np.ndarray) -> np.ndarray:
    """``(h, w, 3)`` RGB of any dtype -> ``(h, w) float32`` luma (OpenCV's float RGB2GRAY uses the
    same BT.601 weights)."""
    return cv2.cvtColor(np.ascontiguousarray(rgb, np.float32), cv2.COLOR_RGB2GRAY)


def quantile(values: np.ndarray, q: float) -> float:
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


def immerkaer(gray: np.ndarray) -> np.ndarray:
    """Signed Immerkaer response of ``(h, w) float32`` luma (linear in ``gray``)."""
    return cv2.filter2D(gray, cv2.CV_32F, _IMMERKAER, borderType=cv2.BORDER_REFLECT)


def interior(mask: Optional[np.ndarray], shape) -> np.ndarray:
    """``(h, w)`` bool: pixels whose 3x3 neighbourhood lies inside the image and ``mask``."""
    if mask is None:
        valid = np.zeros(shape, bool)
        valid[1:-1, 1:-1] = True
        return valid
    m = np.asarray(mask)
    m = m.view(np.uint8) if m.dtype == bool else (m > 0).view(np.uint8)
    # a constant 0 border erodes the image's edge pixels too
    return cv2.erode(m, _KERNEL3, borderType=cv2.BORDER_CONSTANT, borderValue=0).view(bool)


def lattice_sample(values: np.ndarray, valid: np.ndarray, n: int) -> np.ndarray:
    """``values[valid]`` (``n`` pixels); on a 2 x 2 lattice when ``n >= SAMPLE_FULL`` (a quarter
    of the pixels: the partition after it costs a quarter, a median moves by a few %)."""
    if n < SAMPLE_FULL:
        return values[valid]
    return values[::2, ::2][valid[::2, ::2]]


def mad_sigma(values: np.ndarray) -> float:
    """Noise sigma from 1-D signed Immerkaer responses (their median absolute value)."""
    return quantile(np.abs(values), 0.5) * _MAD_TO_SIGMA


def noise_from(resp: np.ndarray, valid: np.ndarray) -> float:
    """Noise sigma from the signed Immerkaer response ``(h, w)`` at the ``valid`` (bool) pixels."""
    n = int(np.count_nonzero(valid))
    if n < 8:
        return 0.0
    return mad_sigma(lattice_sample(resp, valid, n))


def noise_sigma(gray: np.ndarray, mask: Optional[np.ndarray] = None) -> float:
    """Noise level (sigma, same units as ``gray``) by Immerkaer's operator, median-robust.

    Args:
        gray: ``(h, w)`` float luma.
        mask: optional ``(h, w)`` bool: where to measure (3x3 neighbourhoods fully inside).
    """
    g = np.ascontiguousarray(gray, np.float32)
    if min(g.shape) < 3:
        return 0.0
    return noise_from(immerkaer(g), interior(mask, g.shape))


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
    strong = valid & (first >= max(0.6 * quantile(lattice_sample(first, valid, n), 0.99), 8.0))
    means = cv2.mean(mag, strong.view(np.uint8))
    if means[0] <= 0.0:
        return 0.0
    r = min(max(means[1] / means[0], 0.0), 0.995)
    return float(REBLUR_SIGMA * r / np.sqrt(1.0 - r * r))
