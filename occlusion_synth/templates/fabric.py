"""Fabric colour fields for the drawn face masks: solid, plaid, stripes, dots, flowers.

Every function takes fabric coordinates ``u, v`` (``(H, W) float32`` pixels on the flat fabric) and
returns ``(H, W, 3) float32`` RGB in [0, 1]. Patterns are analytic with smooth edges (no aliasing at
the template resolution); randomness comes only from the ``rng`` passed in.
"""
from __future__ import annotations

import numpy as np


def rgb(hex_colour: str) -> np.ndarray:
    """``"#8ec6e6"`` -> ``(3,) float32`` in [0, 1]."""
    h = hex_colour.lstrip("#")
    return np.array([int(h[i:i + 2], 16) for i in (0, 2, 4)], np.float32) / 255.0


def _band(d: np.ndarray, half_width: float, soft: float = 0.7) -> np.ndarray:
    """1 inside ``|d| < half_width``, 0 outside, with a ``soft``-pixel ramp (anti-aliased)."""
    return np.clip((half_width - np.abs(d)) / soft + 0.5, 0.0, 1.0)


def _periodic(x: np.ndarray, period: float) -> np.ndarray:
    """Signed distance to the nearest multiple of ``period``."""
    return (x + period / 2.0) % period - period / 2.0


def _mix(base: np.ndarray, colour: np.ndarray, weight: np.ndarray) -> np.ndarray:
    return base * (1.0 - weight[..., None]) + colour * weight[..., None]


def solid(u, v, colour: str, **_) -> np.ndarray:
    return np.broadcast_to(rgb(colour), u.shape + (3,)).astype(np.float32).copy()


def plaid(u, v, base: str, band: str, line: str, period: float = 34.0, **_) -> np.ndarray:
    """Tartan: wide translucent bands both ways, thin lines between them."""
    out = solid(u, v, base)
    wb = _band(_periodic(u, period), period * 0.22)
    hb = _band(_periodic(v, period), period * 0.22)
    c = rgb(band)
    out = _mix(out, c, 0.55 * wb)
    out = _mix(out, c, 0.55 * hb)
    lc = rgb(line)
    out = _mix(out, lc, 0.8 * _band(_periodic(u - period / 2, period), 0.8))
    out = _mix(out, lc, 0.8 * _band(_periodic(v - period / 2, period), 0.8))
    return out


def stripes(u, v, base: str, stripe: str, period: float = 14.0, angle: float = 0.0, **_) -> np.ndarray:
    """Parallel stripes at ``angle`` degrees (0 = horizontal)."""
    a = np.radians(angle)
    d = -u * np.sin(a) + v * np.cos(a)
    return _mix(solid(u, v, base), rgb(stripe), _band(_periodic(d, period), period * 0.25))


def dots(u, v, base: str, dot: str, period: float = 18.0, radius: float = 3.6, **_) -> np.ndarray:
    """Polka dots on a staggered grid."""
    row = np.floor(v / period + 0.5)
    du = _periodic(u + (row % 2) * period / 2.0, period)
    dv = _periodic(v, period)
    r = np.sqrt(du * du + dv * dv)
    return _mix(solid(u, v, base), rgb(dot), np.clip(radius - r + 0.5, 0.0, 1.0))


def flowers(u, v, base: str, petal: str, centre: str, leaf: str, rng: np.random.Generator,
            period: float = 26.0, **_) -> np.ndarray:
    """Small five-petal flowers on a jittered grid, with a leaf dot beside each."""
    out = solid(u, v, base)
    gi = np.floor(u / period)
    gj = np.floor(v / period)
    # per-cell jitter and rotation from a small random table indexed by cell (deterministic)
    table = rng.uniform(-0.22, 0.22, size=(64, 64, 3)).astype(np.float32)
    ti = (gi.astype(np.int64) % 64, gj.astype(np.int64) % 64)
    cu = (gi + 0.5 + table[ti[0], ti[1], 0]) * period
    cv = (gj + 0.5 + table[ti[0], ti[1], 1]) * period
    rot = table[ti[0], ti[1], 2] * 10.0
    du, dv = u - cu, v - cv
    r = np.sqrt(du * du + dv * dv)
    theta = np.arctan2(dv, du) + rot
    petal_r = period * 0.2 * (0.62 + 0.38 * np.abs(np.cos(2.5 * theta)))
    out = _mix(out, rgb(leaf), np.clip(2.6 - np.hypot(du + period * 0.26, dv - period * 0.22) + 0.5, 0, 1))
    out = _mix(out, rgb(petal), np.clip(petal_r - r + 0.5, 0.0, 1.0))
    out = _mix(out, rgb(centre), np.clip(period * 0.07 - r + 0.5, 0.0, 1.0))
    return out


def camo(u, v, colours: tuple[str, ...], rng: np.random.Generator, scale: float = 9.0, **_) -> np.ndarray:
    """Woodland camouflage: thresholded smooth noise layers."""
    import cv2

    h, w = u.shape
    out = solid(u, v, colours[0])
    for i, c in enumerate(colours[1:]):
        noise = rng.standard_normal((h, w)).astype(np.float32)
        noise = cv2.GaussianBlur(noise, (0, 0), scale)
        noise /= noise.std() + 1e-6
        out = _mix(out, rgb(c), np.clip((noise - 0.35 - 0.15 * i) * 3.0, 0.0, 1.0))
    return out


PATTERNS = {"solid": solid, "plaid": plaid, "stripes": stripes, "dots": dots, "flowers": flowers,
            "camo": camo}


def weave(u, v, rng: np.random.Generator, amount: float, woven: bool) -> np.ndarray:
    """Multiplicative fabric grain, ``(H, W) float32`` around 1.

    Woven cloth gets a fine warp/weft ripple; non-woven (surgical, N95) fabric gets fibre noise
    at two scales instead.
    """
    import cv2

    fine = cv2.GaussianBlur(rng.standard_normal(u.shape).astype(np.float32), (0, 0), 0.7)
    coarse = cv2.GaussianBlur(rng.standard_normal(u.shape).astype(np.float32), (0, 0), 2.0)
    fine /= fine.std() + 1e-6
    coarse /= coarse.std() + 1e-6
    if woven:
        ripple = np.sin(u * np.pi / 1.5) * np.sin(v * np.pi / 1.5)
        grain = 0.5 * ripple + 0.5 * fine
    else:
        grain = 0.6 * fine + 0.4 * coarse
    return (1.0 + amount * grain).astype(np.float32)
