"""Drinks rendered procedurally as shaded solids of revolution (cans, mugs, glasses, bottles, cups).

Each drink is a radius profile ``r(t)`` (``t`` = 0 at the top, 1 at the bottom) seen from slightly
above: every horizontal cross-section is an ellipse, so the top and bottom edges curve, and open
vessels show their opening (inside wall, liquid surface). Per pixel the surface normal of the
solid gives Lambert shading from the top left, a Blinn-Phong highlight and, for metal and glass,
a vertical environment reflection band; glass is partly transparent (Fresnel: more opaque at the
silhouette), the liquid shows through it. Labels and bands are painted in surface coordinates
(angle around the axis, height), so they wrap around the body. Rendered at 3x and reduced by area
averaging for a smooth alpha edge; fine multiplicative noise adds surface grain. Deterministic.

Licence: project code, MIT; the templates are the project's own artwork.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from .alpha import bleed_transparent, resize_rgba

SUPERSAMPLE = 3
# least opacity of glass and plastic (above functional.masks.MASK_THRESHOLD = 0.5 with a margin)
GLASS_MIN_ALPHA = 0.6
TILT = 0.16  # ellipse minor/major axis ratio of a cross-section (camera slightly above)
LIGHT = np.array([-0.45, -0.55, 0.70]) / np.linalg.norm([-0.45, -0.55, 0.70])


@dataclass(frozen=True)
class Band:
    """A painted band on the body between heights ``t0`` and ``t1`` (0 top, 1 bottom)."""

    t0: float
    t1: float
    colour: tuple[int, int, int]
    stripes: int = 0  # >0: this many vertical stripes of ``colour`` alternating with the body colour


@dataclass(frozen=True)
class Drink:
    """One procedural drink.

    Attributes:
        profile: ``(t, r)`` points, ``t`` 0 (top) .. 1 (bottom), ``r`` radius relative to the height.
        material: ``metal``, ``ceramic``, ``glass``, ``plastic`` or ``paper``.
        colour: body colour (glass: its tint).
        liquid: colour of the drink inside (glass shows it), or None.
        fill: liquid level, fraction of the height from the bottom.
        open_top: show the opening (cups, glasses) instead of a closed lid.
        handle: draw a mug handle on the right.
        bands: painted labels/bands.
        cap: colour of a bottle cap or can lid rim drawn at the top, or None.
        description: words for the sidecar.
    """

    profile: tuple[tuple[float, float], ...]
    material: str
    colour: tuple[int, int, int]
    description: str
    liquid: Optional[tuple[int, int, int]] = None
    fill: float = 0.0
    open_top: bool = False
    handle: bool = False
    bands: tuple[Band, ...] = field(default_factory=tuple)
    cap: Optional[tuple[int, int, int]] = None
    liquid_to: float = 1.0  # the liquid ends at this height (a wine glass's bowl, not its stem)


CAN = ((0.0, 0.25), (0.03, 0.27), (0.08, 0.3), (0.92, 0.3), (0.97, 0.28), (1.0, 0.26))
MUG = ((0.0, 0.33), (1.0, 0.31))
TUMBLER = ((0.0, 0.34), (1.0, 0.27))
BEER_BOTTLE = ((0.0, 0.06), (0.05, 0.065), (0.3, 0.075), (0.42, 0.16), (0.5, 0.18), (1.0, 0.18))
WATER_BOTTLE = ((0.0, 0.09), (0.06, 0.1), (0.14, 0.2), (0.22, 0.22), (0.5, 0.21), (0.56, 0.2),
                (0.62, 0.22), (1.0, 0.22))
PAPER_CUP = ((0.0, 0.36), (0.06, 0.36), (0.08, 0.33), (1.0, 0.24))
WINE_GLASS = ((0.0, 0.22), (0.2, 0.26), (0.42, 0.2), (0.52, 0.05), (0.55, 0.025), (0.93, 0.025),
              (0.97, 0.2), (1.0, 0.21))

DRINKS: dict[str, Drink] = {
    "can_cola": Drink(CAN, "metal", (170, 20, 28), "drink can, red with a white band",
                      bands=(Band(0.45, 0.55, (245, 245, 240)),), cap=(200, 200, 205)),
    "can_lemon": Drink(CAN, "metal", (40, 150, 60), "drink can, green with a yellow label",
                       bands=(Band(0.3, 0.7, (235, 215, 60)),), cap=(200, 200, 205)),
    "can_silver": Drink(CAN, "metal", (190, 195, 205), "drink can, silver with blue stripes",
                        bands=(Band(0.2, 0.8, (30, 70, 160), stripes=6),), cap=(210, 210, 215)),
    "can_beer": Drink(CAN, "metal", (200, 160, 50), "beer can, gold with a dark red label",
                      bands=(Band(0.35, 0.62, (120, 20, 30)),), cap=(205, 205, 210)),
    "mug_white": Drink(MUG, "ceramic", (236, 234, 228), "white ceramic mug of coffee", liquid=(70, 40, 20),
                       fill=0.88, open_top=True, handle=True),
    "mug_blue": Drink(MUG, "ceramic", (40, 80, 150), "blue ceramic mug of tea", liquid=(150, 80, 30),
                      fill=0.85, open_top=True, handle=True, bands=(Band(0.06, 0.1, (235, 235, 235)),)),
    "mug_red": Drink(MUG, "ceramic", (175, 35, 35), "red ceramic mug of cocoa", liquid=(95, 55, 35),
                     fill=0.86, open_top=True, handle=True),
    "mug_green_stripes": Drink(MUG, "ceramic", (230, 230, 220), "striped mug (green), coffee",
                               liquid=(80, 45, 25), fill=0.85, open_top=True, handle=True,
                               bands=(Band(0.25, 0.75, (60, 140, 80), stripes=9),)),
    "glass_water": Drink(TUMBLER, "glass", (225, 235, 240), "tumbler glass of water", liquid=(200, 220, 235),
                         fill=0.7, open_top=True),
    "glass_orange_juice": Drink(TUMBLER, "glass", (225, 235, 240), "tumbler glass of orange juice",
                                liquid=(245, 150, 20), fill=0.75, open_top=True),
    "glass_milk": Drink(TUMBLER, "glass", (225, 235, 240), "tumbler glass of milk", liquid=(245, 245, 240),
                        fill=0.8, open_top=True),
    "glass_cola": Drink(TUMBLER, "glass", (225, 235, 240), "tumbler glass of cola", liquid=(60, 25, 15),
                        fill=0.7, open_top=True),
    "bottle_beer_brown": Drink(BEER_BOTTLE, "glass", (110, 55, 15), "brown beer bottle with a label",
                               liquid=(120, 70, 15), fill=0.8, bands=(Band(0.6, 0.82, (230, 220, 190)),),
                               cap=(190, 170, 60)),
    "bottle_beer_green": Drink(BEER_BOTTLE, "glass", (30, 110, 50), "green glass bottle with a label",
                               liquid=(60, 120, 40), fill=0.75, bands=(Band(0.58, 0.8, (200, 30, 40)),),
                               cap=(200, 200, 200)),
    "bottle_water": Drink(WATER_BOTTLE, "plastic", (215, 230, 245), "plastic water bottle, blue label",
                          liquid=(205, 225, 240), fill=0.85, bands=(Band(0.3, 0.48, (40, 110, 200)),),
                          cap=(30, 80, 190)),
    "paper_cup_coffee": Drink(PAPER_CUP, "paper", (240, 238, 232), "paper coffee cup with a sleeve",
                              bands=(Band(0.3, 0.6, (150, 100, 60)),), cap=(245, 245, 245)),
    "wine_glass_red": Drink(WINE_GLASS, "glass", (230, 235, 240), "wine glass with red wine",
                            liquid=(110, 10, 30), fill=0.68, open_top=True, liquid_to=0.5),
}


def _profile(drink: Drink, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Radius and its derivative d r / d t at heights ``t``."""
    ts, rs = np.array(drink.profile, np.float64).T
    r = np.interp(t, ts, rs)
    eps = 1e-3
    dr = (np.interp(t + eps, ts, rs) - np.interp(t - eps, ts, rs)) / (2 * eps)
    return r, dr


def _noise(shape: tuple[int, int], rng: np.random.Generator, sigma: float) -> np.ndarray:
    import cv2

    n = cv2.GaussianBlur(rng.standard_normal(shape).astype(np.float32), (0, 0), sigma)
    return n / (n.std() + 1e-6)


def render_drink(drink: Drink, height: int = 240, seed: int = 0) -> np.ndarray:
    """Render ``drink`` to ``(h, w, 4) uint8`` straight alpha, ``height`` pixels tall (incl. margin).

    Returns:
        RGBA; transparent RGB bled from the nearest visible pixel.
    """
    s = SUPERSAMPLE
    H = height * s
    margin = 4 * s
    body_h = H - 2 * margin
    rmax = max(r for _, r in drink.profile) * body_h
    handle_w = 0.45 * rmax if drink.handle else 0.0
    W = int(2 * rmax + handle_w + 2 * margin + 2)
    cx = margin + rmax
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:H, 0:W].astype(np.float64)
    e = TILT
    top = margin + e * drink.profile[0][1] * body_h  # y of the top ellipse's centre
    # which profile height t does pixel (x, y) show on the front surface? Iterate (the front of the
    # cross-section at t is at y = top + t*body_h' + e*r(t)*sqrt(1-u^2)).
    span = body_h - e * (drink.profile[0][1] + drink.profile[-1][1]) * body_h
    t = (ys - top) / span
    for _ in range(3):
        r, _ = _profile(drink, np.clip(t, 0, 1))
        u = (xs - cx) / np.maximum(r * body_h, 1e-6)
        front = e * r * body_h * np.sqrt(np.clip(1 - u ** 2, 0, 1))
        t = (ys - top - front) / span
    r, dr = _profile(drink, np.clip(t, 0, 1))
    rpx = r * body_h
    u = (xs - cx) / np.maximum(rpx, 1e-6)
    inside = (np.abs(u) <= 1) & (t >= 0) & (t <= 1)
    nz = np.sqrt(np.clip(1 - u ** 2, 0, 1))
    normal = np.stack([u, dr * body_h / span * 0.0 + (-dr) * nz * 0.6, nz], axis=-1)
    # the slope of the profile tilts the normal up or down (a bottle's shoulder faces up)
    normal[..., 1] = dr * nz * 0.9 - 0.15 * nz
    normal /= np.linalg.norm(normal, axis=-1, keepdims=True) + 1e-9
    theta = np.arcsin(np.clip(u, -1, 1))  # angle around the axis, for painted patterns

    base = np.empty((H, W, 3), np.float64)
    base[:] = drink.colour
    for band in drink.bands:
        sel = (t >= band.t0) & (t <= band.t1)
        if band.stripes:
            sel &= (np.floor((theta + np.pi / 2) / np.pi * band.stripes * 2) % 2) == 0
        base[sel] = band.colour
    lam = np.clip(normal @ LIGHT, 0, 1)
    half = LIGHT + np.array([0, 0, 1.0])
    half /= np.linalg.norm(half)
    spec = np.clip(normal @ half, 0, 1)
    grain = _noise((H, W), rng, 0.7 * s)
    alpha_body = inside.astype(np.float64)
    m = drink.material
    if m == "metal":
        env = 0.55 + 0.45 * np.cos(3.0 * theta + 0.6) ** 2  # vertical reflection bands
        shade = 0.25 + 0.75 * lam * env
        rgb = base * shade[..., None] + 255 * (0.85 * spec ** 40 + 0.25 * np.exp(-((u + 0.45) / 0.08) ** 2))[..., None]
        rgb *= (1 + 0.015 * grain)[..., None]
    elif m in ("ceramic", "paper"):
        shade = 0.35 + 0.65 * lam
        gloss = 0.6 if m == "ceramic" else 0.12
        rgb = base * shade[..., None] + 255 * gloss * (spec ** 60)[..., None]
        rgb *= (1 + (0.006 if m == "ceramic" else 0.012) * grain)[..., None]
    else:  # glass, plastic: tinted transparency, liquid seen through, Fresnel rim, highlights
        liquid_top = 1.0 - drink.fill
        in_liquid = inside & (t >= liquid_top) & (t <= drink.liquid_to) & (drink.liquid is not None)
        fres = 0.18 + 0.7 * (1 - nz) ** 3
        glass_rgb = base * (0.55 + 0.45 * lam)[..., None]
        liq = np.array(drink.liquid if drink.liquid is not None else drink.colour, np.float64)
        liq_rgb = liq * (0.45 + 0.55 * (0.6 + 0.4 * lam))[..., None]
        liq_alpha = 0.55 if sum(liq) > 600 else 0.85
        if m == "glass" and sum(drink.colour) < 450:  # coloured bottle glass: fairly opaque
            fres = 0.55 + 0.4 * (1 - nz) ** 2
            liq_alpha = 0.85
        rgb = np.where(in_liquid[..., None], liq_rgb * (1 - fres[..., None]) + glass_rgb * fres[..., None], glass_rgb)
        alpha_body = np.where(in_liquid, liq_alpha + (1 - liq_alpha) * fres, fres) * inside
        for band in drink.bands:  # labels are opaque paper
            sel = inside & (t >= band.t0) & (t <= band.t1)
            rgb[sel] = (np.array(band.colour, np.float64) * (0.4 + 0.6 * lam[..., None]))[sel]
            alpha_body[sel] = 1.0
        high = 0.9 * spec ** 50 + 0.7 * np.exp(-((u + 0.5) / 0.07) ** 2) + 0.3 * np.exp(-((u - 0.62) / 0.05) ** 2)
        high *= inside
        rgb = rgb * (1 - np.clip(high, 0, 1)[..., None]) + 255 * np.clip(high, 0, 1)[..., None]
        alpha_body = np.maximum(alpha_body, np.clip(high, 0, 1) * inside)
        # no part of the vessel is fainter than the occlusion-mask threshold: every pixel a drink
        # changes is then inside its mask (a see-through glass would hide changes from the mask)
        alpha_body = np.maximum(alpha_body, GLASS_MIN_ALPHA) * inside
        rgb *= (1 + 0.01 * grain)[..., None]
    alpha = alpha_body.copy()

    # the top: an opening (inside wall + liquid) or a lid / cap
    r_top = drink.profile[0][1] * body_h
    ey = e * r_top
    d_top = ((xs - cx) / r_top) ** 2 + ((ys - top) / max(ey, 1e-6)) ** 2
    if drink.open_top:
        wall = 0.06 * r_top
        rim = (d_top <= 1.0) & (d_top >= ((r_top - wall) / r_top) ** 2)
        opening = d_top < ((r_top - wall) / r_top) ** 2
        inner = np.array(drink.colour, np.float64) * (0.55 + 0.25 * (ys - top + ey) / (2 * ey + 1e-6))[..., None]
        inner_alpha = GLASS_MIN_ALPHA if m == "glass" else 1.0
        rgb[opening] = inner[opening]
        alpha[opening] = np.maximum(alpha[opening], inner_alpha)
        if drink.liquid is not None and drink.fill > 0:
            # liquid surface: an ellipse lower down, clipped by the opening
            ly = top + (1 - drink.fill) * span
            lr = np.interp(1 - drink.fill, *np.array(drink.profile).T) * body_h * 0.97
            d_liq = ((xs - cx) / lr) ** 2 + ((ys - ly) / max(e * lr, 1e-6)) ** 2
            surf = opening & (d_liq <= 1.0) if ly - top < ey else (d_liq <= 1.0) & inside
            liq = np.array(drink.liquid, np.float64)
            sheen = 0.85 + 0.15 * np.clip(1 - d_liq, 0, 1)
            rgb[surf] = (liq * sheen[..., None])[surf]
            alpha[surf] = 0.97 if m != "glass" or sum(drink.liquid) < 600 else 0.8
        lit_rim = 0.75 + 0.25 * np.clip(-(xs - cx) / r_top, -1, 1)
        rgb[rim] = (np.maximum(np.array(drink.colour, np.float64), 200) * lit_rim[..., None])[rim]
        alpha[rim] = 1.0
    elif drink.cap is not None:
        lid = d_top <= 1.0
        cap = np.array(drink.cap, np.float64)
        rgb[lid] = (cap * (0.8 + 0.2 * np.clip(-(xs - cx) / r_top, -1, 1))[..., None])[lid]
        alpha[lid] = 1.0

    if drink.handle:
        # a ring on the right: a tube of radius tr around an elliptic path
        hx, hy = cx + rpx.max() * 0.92 + 0.0, top + 0.45 * span
        ax, ay, tr = 0.42 * rmax, 0.28 * span, 0.09 * rmax
        ang = np.arctan2((ys - hy) / ay, (xs - hx) / ax)
        px, py = hx + ax * np.cos(ang), hy + ay * np.sin(ang)
        d = np.hypot(xs - px, ys - py)
        tube = (d <= tr) & (xs > cx + 0.5 * rmax) & ~inside
        nzt = np.sqrt(np.clip(1 - (d / tr) ** 2, 0, 1))
        nrm = np.stack([(xs - px) / tr, (ys - py) / tr, nzt], axis=-1)
        lt = np.clip(nrm @ LIGHT, 0, 1)
        sp = np.clip(nrm @ half, 0, 1) ** 60
        col = np.array(drink.colour, np.float64) * (0.35 + 0.65 * lt)[..., None] + 150 * sp[..., None]
        rgb[tube] = col[tube]
        alpha[tube] = 1.0

    out = np.zeros((H, W, 4), np.uint8)
    out[..., :3] = np.clip(rgb + 0.5, 0, 255).astype(np.uint8)
    out[..., 3] = np.clip(alpha * 255 + 0.5, 0, 255).astype(np.uint8)
    out[out[..., 3] == 0, :3] = 0
    small = resize_rgba(out, (int(round(W / s)), height))
    return bleed_transparent(small)


def seed_for(stem: str) -> int:
    return zlib.crc32(stem.encode("utf-8"))
