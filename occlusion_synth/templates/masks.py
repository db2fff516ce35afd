"""Face-mask templates drawn by the project's own code (surgical, N95, KN95, cloth patterns, dark).

Every mask is drawn in one canonical frontal face frame: :data:`CANONICAL_68` (unit box) mapped to
template pixels by :func:`unit_to_px`. So the landmark anchors ``lm<i>`` of every mask are exactly the
canonical landmark positions, and placement code can warp a mask onto a detected face with any
landmark-driven warp (thin-plate spline, piecewise affine).

Drawing: outline from splines through jaw and nose-bridge points (supersampled 4x, area-averaged,
then feathered); a height field (dome + nose tent + pleats/seams/valve + low-frequency wrinkles)
gives normals for Lambert + specular shading; fabric patterns are laid out in fabric coordinates
that follow the mask's curvature; hems, stitches, nose wire, ear loops or head straps on top.
"""
from __future__ import annotations

import zlib

import numpy as np

from ..landmarks.schemes import CANONICAL_68
from . import fabric
from .alpha import alpha_centroid, bleed_transparent
from .library import MASK_ANCHOR_LANDMARKS

SCALE = 216.0  # template pixels per canonical unit (jaw width)
OX, OY_UNIT, OY_PX = 20.0, 0.13, 4.0  # unit (0, OY_UNIT) -> pixel (OX, OY_PX)
WIDTH, HEIGHT = 256, 204
SS = 4  # supersampling of outlines and loops
C = CANONICAL_68.astype(np.float64)
CENTRE = np.array([0.515, 0.45])
LIGHT = np.array([-0.3, -0.55, 1.0]) / np.linalg.norm([-0.3, -0.55, 1.0])


def unit_to_px(p) -> np.ndarray:
    """Canonical unit-box coordinates ``(..., 2)`` -> template pixels ``(..., 2)``."""
    p = np.asarray(p, np.float64)
    return np.stack([OX + p[..., 0] * SCALE, OY_PX + (p[..., 1] - OY_UNIT) * SCALE], axis=-1)


def _jaw(k: float, chin_drop: float, idx=range(15, 0, -1)) -> list[np.ndarray]:
    """Jaw points pushed out from the face centre by ``k``, the chin lowered by ``chin_drop``."""
    pts = []
    for i in idx:
        p = CENTRE + (C[i] - CENTRE) * k
        p[1] += chin_drop * np.exp(-((i - 8) / 3.0) ** 2)
        pts.append(p)
    return pts


def _catmull_rom(points, closed: bool, n: int = 14) -> np.ndarray:
    """Dense points on a centripetal-free (uniform) Catmull-Rom spline through ``points``."""
    p = np.asarray(points, np.float64)
    ext = np.vstack([p[-1], p, p[0], p[1]]) if closed else np.vstack([2 * p[0] - p[1], p, 2 * p[-1] - p[-2]])
    segs = len(p) if closed else len(p) - 1
    t = np.linspace(0.0, 1.0, n, endpoint=False)[:, None]
    out = []
    for i in range(segs):
        p0, p1, p2, p3 = ext[i], ext[i + 1], ext[i + 2], ext[i + 3]
        out.append(0.5 * ((2 * p1) + (-p0 + p2) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t ** 2
                          + (-p0 + 3 * p1 - 3 * p2 + p3) * t ** 3))
    if not closed:
        out.append(p[-1:])
    return np.vstack(out)


def outline(shape: str) -> np.ndarray:
    """Closed outline of a mask shape, ``(N, 2)`` canonical unit coordinates."""
    apex_x = C[28, 0]
    if shape == "surgical":
        left, right = np.array([C[1, 0] - 0.012, C[1, 1] - 0.055]), np.array([C[15, 0] + 0.012, C[15, 1] - 0.055])
        top = _catmull_rom([left, (0.17, 0.262), (0.34, 0.222), (apex_x, 0.19), (0.68, 0.222),
                            (0.85, 0.253), right], closed=False)
        bottom = _catmull_rom([right] + _jaw(1.03, 0.018) + [left], closed=False)
        return np.vstack([top, bottom])
    if shape == "cloth":
        pts = [(0.02, 0.315), (0.17, 0.255), (0.34, 0.205), (apex_x, 0.172), (0.68, 0.205),
               (0.85, 0.245), (0.995, 0.285)] + _jaw(1.035, 0.022)
        return _catmull_rom(pts, closed=True)
    if shape == "n95":
        pts = [(0.05, 0.335), (0.2, 0.256), (0.36, 0.208), (apex_x, 0.18), (0.66, 0.208),
               (0.82, 0.25), (0.96, 0.305)] + _jaw(1.04, 0.035, range(14, 1, -1))
        return _catmull_rom(pts, closed=True)
    if shape == "kn95":
        left, right, apex = np.array([0.025, 0.33]), np.array([0.99, 0.3]), np.array([apex_x, 0.165])
        chin = np.array([C[8, 0], C[8, 1] + 0.05])
        return np.vstack([
            _catmull_rom([left, (0.27, 0.245), apex], closed=False),
            _catmull_rom([apex, (0.76, 0.238), right], closed=False),
            _catmull_rom([right] + _jaw(1.04, 0.0, range(14, 8, -1)) + [chin], closed=False),
            _catmull_rom([chin] + _jaw(1.04, 0.0, range(7, 1, -1)) + [left], closed=False),
        ])
    raise ValueError(f"unknown mask shape {shape!r}")


def _raster_polygon(poly_px: np.ndarray) -> np.ndarray:
    """Anti-aliased coverage ``(HEIGHT, WIDTH) float32`` in [0, 1] of a pixel polygon."""
    import cv2

    hi = np.zeros((HEIGHT * SS, WIDTH * SS), np.uint8)
    cv2.fillPoly(hi, [np.round(poly_px * SS * 16).astype(np.int32)], 255, cv2.LINE_8, shift=4)
    return cv2.resize(hi, (WIDTH, HEIGHT), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0


def _raster_polyline(points_px, thickness: float) -> np.ndarray:
    import cv2

    hi = np.zeros((HEIGHT * SS, WIDTH * SS), np.uint8)
    pts = np.round(np.asarray(points_px) * SS * 16).astype(np.int32)
    cv2.polylines(hi, [pts], False, 255, max(1, int(round(thickness * SS))), cv2.LINE_AA, shift=4)
    return cv2.resize(hi, (WIDTH, HEIGHT), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0


def _surface_coords(cover: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel ``s`` (-1 left edge .. 1 right edge, per row) and ``t`` (0 top .. 1 bottom, per column)."""
    inside = cover > 0.5
    ys, xs = np.indices(inside.shape, dtype=np.float32)
    rows = np.where(inside.any(1))[0]
    cols = np.where(inside.any(0))[0]
    left = np.interp(np.arange(HEIGHT), rows, [np.argmax(inside[r]) for r in rows])
    right = np.interp(np.arange(HEIGHT), rows, [WIDTH - 1 - np.argmax(inside[r, ::-1]) for r in rows])
    top = np.interp(np.arange(WIDTH), cols, [np.argmax(inside[:, c]) for c in cols])
    bottom = np.interp(np.arange(WIDTH), cols, [HEIGHT - 1 - np.argmax(inside[::-1, c]) for c in cols])
    # integer edge positions would step row by row and streak the shading: smooth them
    left, right, top, bottom = (_smooth1d(a, 3.0) for a in (left, right, top, bottom))
    mid, half = (left + right) / 2, np.maximum((right - left) / 2, 1.0)
    s = (xs - mid[:, None]) / half[:, None]
    t = (ys - top[None, :]) / np.maximum(bottom - top, 1.0)[None, :]
    return np.clip(s, -1.3, 1.3).astype(np.float32), np.clip(t, -0.3, 1.3).astype(np.float32)


def _smooth1d(a: np.ndarray, sigma: float) -> np.ndarray:
    from scipy.ndimage import gaussian_filter1d

    return gaussian_filter1d(np.asarray(a, np.float64), sigma, mode="nearest")


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-np.clip(x, -40.0, 40.0)))


def _shade(height: np.ndarray, ambient: float, specular: float, shininess: float) -> tuple[np.ndarray, np.ndarray]:
    """Lambert factor (1.0 for a surface facing the viewer) and specular term from a height field."""
    gy, gx = np.gradient(height.astype(np.float64))
    n = np.stack([-gx, -gy, np.ones_like(gx)], axis=-1)
    n /= np.linalg.norm(n, axis=-1, keepdims=True)
    diffuse = np.clip(n @ LIGHT, 0.0, 1.0)
    lam = (ambient + (1 - ambient) * diffuse) / (ambient + (1 - ambient) * LIGHT[2])
    half = LIGHT + np.array([0.0, 0.0, 1.0])
    half /= np.linalg.norm(half)
    spec = specular * np.clip(n @ half, 0.0, 1.0) ** shininess
    return lam.astype(np.float32), spec.astype(np.float32)


def _loops(kind: str) -> list[np.ndarray]:
    """Ear loops or head straps as unit-coordinate polylines (left side, then mirrored right)."""
    if kind == "ear":
        left = [(0.03, 0.33), (-0.035, 0.305), (-0.07, 0.36), (-0.068, 0.47), (-0.035, 0.56), (0.055, 0.62)]
    elif kind == "straps":
        left = [(0.06, 0.37), (-0.02, 0.345), (-0.09, 0.325)]
        lower = [(0.07, 0.66), (-0.01, 0.62), (-0.09, 0.59)]
        return [_catmull_rom(p, closed=False) for p in (left, lower, _mirror(left), _mirror(lower))]
    else:
        return []
    return [_catmull_rom(left, closed=False), _catmull_rom(_mirror(left), closed=False)]


def _mirror(points):
    # the canonical face is slightly tilted: lm15 sits 0.035 higher than lm1
    return [(C[1, 0] + C[15, 0] - x, y - 0.035 * (0.62 - y) / 0.3 - 0.02) for x, y in points]


# style: shape, fabric pattern (name, kwargs), surface, extras. Colours are hex sRGB.
MASK_STYLES: dict[str, dict] = {
    "surgical_blue": dict(shape="surgical", pattern=("solid", dict(colour="#8fc3e3")), pleats=3,
                          hem="#a9d2ea", loops="ear", loop_colour="#f2f2f0", grain=0.030,
                          description="surgical mask, light blue, three pleats, white ear loops"),
    "surgical_white": dict(shape="surgical", pattern=("solid", dict(colour="#eeeff0")), pleats=3,
                           hem="#f7f7f7", loops="ear", loop_colour="#e9e9e9", grain=0.030,
                           description="surgical mask, white, three pleats"),
    "surgical_mint": dict(shape="surgical", pattern=("solid", dict(colour="#a8dcc8")), pleats=3,
                          hem="#bfe6d6", loops="ear", loop_colour="#f0f0ee", grain=0.030,
                          description="surgical mask, pale green, three pleats"),
    "surgical_pink": dict(shape="surgical", pattern=("solid", dict(colour="#f2b8c6")), pleats=3,
                          hem="#f6c9d4", loops="ear", loop_colour="#f4f0f0", grain=0.030,
                          description="surgical mask, pink, three pleats"),
    "surgical_black": dict(shape="surgical", pattern=("solid", dict(colour="#2a2b2e")), pleats=3,
                           hem="#34353a", loops="ear", loop_colour="#222326", grain=0.048,
                           specular=0.12, description="surgical mask, black, three pleats"),
    "n95_valve_white": dict(shape="n95", pattern=("solid", dict(colour="#f1f0ec")), valve=True,
                            nose_clip=True, hem="#e4e3de", loops="straps", loop_colour="#e8d36a",
                            grain=0.042, dome=1.5,
                            description="N95 dome respirator, white, exhalation valve, yellow straps"),
    "n95_white": dict(shape="n95", pattern=("solid", dict(colour="#f4f3ef")), nose_clip=True,
                      hem="#e6e5e0", loops="straps", loop_colour="#6f9fd8", grain=0.042, dome=1.5,
                      description="N95 dome respirator, white, blue straps"),
    "kn95_white": dict(shape="kn95", pattern=("solid", dict(colour="#f3f3f1")), seam=True, weld=True,
                       hem="#ececea", loops="ear", loop_colour="#f5f5f5", grain=0.030, tent=1.0,
                       description="KN95 folded respirator, white, centre seam, welded edges"),
    "kn95_black": dict(shape="kn95", pattern=("solid", dict(colour="#26272a")), seam=True, weld=True,
                       hem="#303136", loops="ear", loop_colour="#1f2023", grain=0.048, tent=1.0,
                       specular=0.12, description="KN95 folded respirator, black"),
    "cloth_plaid_red": dict(shape="cloth", pattern=("plaid", dict(base="#b3262e", band="#1f2a44", line="#e8d28a")),
                            seam=True, hem=None, loops="ear", loop_colour="#8a1c22", grain=0.060,
                            description="cloth mask, red tartan, centre seam"),
    "cloth_plaid_blue": dict(shape="cloth",
                             pattern=("plaid", dict(base="#2c4f86", band="#1d6b4e", line="#f0f0f0", period=30.0)),
                             seam=True, hem=None, loops="ear", loop_colour="#223e69", grain=0.060,
                             description="cloth mask, blue-green plaid, centre seam"),
    "cloth_floral": dict(shape="cloth",
                         pattern=("flowers", dict(base="#1e2d52", petal="#f4d9e4", centre="#f2c14e", leaf="#6fa36b")),
                         seam=True, hem=None, loops="ear", loop_colour="#1a2747", grain=0.060,
                         description="cloth mask, navy with small flowers, centre seam"),
    "cloth_stripes": dict(shape="cloth", pattern=("stripes", dict(base="#f1efe9", stripe="#243b6b", period=13.0)),
                          seam=True, hem=None, loops="ear", loop_colour="#243b6b", grain=0.054,
                          description="cloth mask, navy and white stripes, centre seam"),
    "cloth_dots": dict(shape="cloth", pattern=("dots", dict(base="#c8343f", dot="#f7f2ea")),
                       seam=True, hem=None, loops="ear", loop_colour="#a52a33", grain=0.060,
                       description="cloth mask, red with white polka dots, centre seam"),
    "cloth_camo": dict(shape="cloth", pattern=("camo", dict(colours=("#6b6b47", "#3f4a2c", "#8c7a55", "#2b2620"))),
                       seam=True, hem=None, loops="ear", loop_colour="#3a3a2c", grain=0.060,
                       description="cloth mask, woodland camouflage, centre seam"),
    "cloth_black": dict(shape="cloth", pattern=("solid", dict(colour="#1f1f22")), seam=True, hem=None,
                        loops="ear", loop_colour="#1a1a1c", grain=0.072, specular=0.1,
                        description="cloth mask, black, centre seam"),
    "cloth_grey": dict(shape="cloth", pattern=("solid", dict(colour="#8d9096")), seam=True, hem=None,
                       loops="ear", loop_colour="#6f7278", grain=0.084,
                       description="cloth mask, heather grey jersey, centre seam"),
    "surgical_lavender": dict(shape="surgical", pattern=("solid", dict(colour="#c7b8e6")), pleats=3,
                              hem="#d4c8ec", loops="ear", loop_colour="#f1eff4", grain=0.030,
                              description="surgical mask, lavender, three pleats"),
    "kn95_grey": dict(shape="kn95", pattern=("solid", dict(colour="#a9acb1")), seam=True, weld=True,
                      hem="#b3b6ba", loops="ear", loop_colour="#9a9da2", grain=0.036, tent=1.0,
                      description="KN95 folded respirator, grey, centre seam, welded edges"),
    "cloth_denim": dict(shape="cloth", pattern=("stripes", dict(base="#3b5a85", stripe="#34507a", period=3.0)),
                        seam=True, hem=None, loops="ear", loop_colour="#2e4668", grain=0.080,
                        description="cloth mask, denim blue, centre seam"),
}


def _height(style: dict, s: np.ndarray, t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Height field in pixels: dome, nose tent, pleats, seam, wrinkles."""
    import cv2

    shape = style["shape"]
    dome = style.get("dome", 1.0)
    h = 34.0 * dome * np.sqrt(np.clip(1.0 - (0.95 * s) ** 2, 0.0, 1.0))
    h += 18.0 * dome * np.sqrt(np.clip(1.0 - ((t - 0.45) / 0.75) ** 2, 0.0, 1.0))
    nose = np.exp(-(s / 0.17) ** 2) * np.clip(1.0 - t / 0.5, 0.0, 1.0) ** 1.5
    h += (6.0 if shape == "n95" else 13.0) * nose
    if style.get("tent"):
        h += 16.0 * style["tent"] * (1.0 - np.clip(np.abs(s), 0.0, 1.0)) ** 1.3
    pleats = style.get("pleats", 0)
    for k in range(pleats):
        # pleats fan in toward the sides, where the folded fabric is gathered
        t0 = 0.5 + (0.3 + 0.42 * k / max(pleats - 1, 1) - 0.51) * (1.0 - 0.3 * s ** 2)
        d = (t - t0) * 180.0  # ~pixels across the fold
        h += 2.2 * np.clip((d + 9.0) / 9.0, 0.0, 1.0) - 2.2 * _sigmoid(d / 0.7)
    if style.get("seam"):
        d = s * 110.0
        h -= 1.8 * np.exp(-(d / 1.2) ** 2)  # stitched seam sinks in
        h += 2.5 * np.exp(-(d / 6.0) ** 2)  # fabric bulges either side
    wrinkles = cv2.GaussianBlur(rng.standard_normal(s.shape).astype(np.float32), (0, 0), 9.0)
    h += 0.6 / (wrinkles.std() + 1e-6) * wrinkles
    return h


def _valve(style: dict, colour: np.ndarray, height: np.ndarray) -> None:
    """Exhalation valve on the wearer's left cheek: a domed plastic disc with a slotted grille."""
    ys, xs = np.indices(height.shape, dtype=np.float32)
    cx, cy = unit_to_px((0.70, 0.635))
    radius = 17.0
    r = np.hypot(xs - cx, ys - cy)
    disc = np.clip(radius - r + 0.5, 0.0, 1.0)
    height += disc * (4.0 + 6.0 * np.sqrt(np.clip(1.0 - (r / radius) ** 2, 0.0, 1.0)))
    plastic = fabric.rgb("#dedfe2")
    slots = np.clip(1.0 - np.abs(((ys - cy) + 2.0) % 4.0 - 2.0) / 0.9, 0.0, 1.0) * np.clip(0.6 * radius - r, 0.0, 1.0)
    rim = np.clip(1.0 - np.abs(r - 0.72 * radius) / 0.8, 0.0, 1.0)
    valve_rgb = plastic[None, None] * (1.0 - 0.55 * slots - 0.25 * rim)[..., None]
    colour[:] = colour * (1.0 - disc[..., None]) + valve_rgb * disc[..., None]


def _hem(style: dict, cover: np.ndarray, colour: np.ndarray, height: np.ndarray, s, t) -> None:
    """Edge binding (or welded rim) and a dashed stitch line along the outline."""
    import cv2

    inside = (cover > 0.5).astype(np.uint8)
    dist = cv2.distanceTransform(inside, cv2.DIST_L2, 5)
    width = 3.2 if style["shape"] != "n95" else 4.0
    band = np.clip(width - dist + 0.5, 0.0, 1.0) * inside
    if style.get("hem"):
        colour[:] = colour * (1 - band[..., None]) + fabric.rgb(style["hem"]) * band[..., None]
    height += 1.2 * band
    ys, xs = np.indices(cover.shape, dtype=np.float32)
    cx, cy = unit_to_px(CENTRE)
    arc = np.arctan2(ys - cy, xs - cx) * 110.0  # ~pixels along the outline
    dash = (np.abs(arc % 5.0 - 2.5) < 1.4).astype(np.float32)
    line = np.clip(1.0 - np.abs(dist - (width + 1.6)) / 0.6, 0.0, 1.0) * dash
    if style.get("weld"):  # ultrasonic weld dots of KN95s instead of thread
        line = np.clip(1.0 - np.abs(dist - (width + 1.2)) / 0.8, 0.0, 1.0) * (np.abs(arc % 3.0 - 1.5) < 0.8)
    colour[:] = colour * (1.0 - 0.28 * line[..., None])
    height -= 0.6 * line


def draw_mask(stem: str) -> tuple[np.ndarray, dict[str, tuple[float, float]], str]:
    """Draw one mask style from :data:`MASK_STYLES`.

    Returns:
        ``(rgba, anchors, description)``: ``(HEIGHT, WIDTH, 4) uint8`` straight alpha with bled
        transparent RGB; anchors ``lm<i>`` (canonical landmark positions in template pixels) and
        ``center``; a one-line description. Deterministic: the only randomness is seeded by ``stem``.
    """
    import cv2

    style = MASK_STYLES[stem]
    rng = np.random.default_rng(zlib.crc32(stem.encode("utf-8")))
    poly = unit_to_px(outline(style["shape"]))
    cover = _raster_polygon(poly)
    s, t = _surface_coords(cover)
    # fabric coordinates follow the mask's curvature (horizontal lines bend with the top edge)
    u = s * 110.0
    v = t * 180.0
    name, kwargs = style["pattern"]
    colour = fabric.PATTERNS[name](u, v, rng=rng, **kwargs)
    height = _height(style, s, t, rng)
    if style.get("valve"):
        _valve(style, colour, height)
    if style.get("nose_clip"):
        clip = np.clip(1.0 - np.abs(t - 0.06) / 0.025, 0.0, 1.0) * np.clip((0.22 - np.abs(s)) * 40, 0.0, 1.0)
        colour = colour * (1.0 - 0.5 * clip[..., None]) + fabric.rgb("#c9cbd0") * 0.5 * clip[..., None]
        height += 1.5 * clip
    elif style["shape"] in ("surgical", "cloth"):  # nose wire sewn into the top hem
        height += 1.2 * np.clip(1.0 - np.abs(t - 0.04) / 0.02, 0.0, 1.0) * (np.abs(s) < 0.3)
    _hem(style, cover, colour, height, s, t)
    if style.get("seam"):
        seam = np.clip(1.0 - np.abs(s * 110.0) / 0.8, 0.0, 1.0) * (cover > 0)
        colour = colour * (1.0 - 0.25 * seam[..., None])
    lam, spec = _shade(height, ambient=0.45, specular=style.get("specular", 0.06), shininess=18.0)
    grain = fabric.weave(u, v, rng, style.get("grain", 0.06), woven=style["shape"] == "cloth")
    body = np.clip(colour * (lam * grain)[..., None] + spec[..., None], 0.0, 1.0)
    body_a = cv2.GaussianBlur(cover, (0, 0), 0.6)  # feathered edge, ~2 px ramp

    # loops/straps go behind the mask body
    loop_a = np.zeros_like(body_a)
    for line in _loops(style.get("loops")):
        loop_a = np.maximum(loop_a, _raster_polyline(unit_to_px(line), 2.2 if style.get("loops") == "ear" else 3.4))
    loop_rgb = fabric.rgb(style.get("loop_colour", "#f0f0f0"))[None, None] * (0.85 + 0.15 * lam[..., None])
    out_a = body_a + loop_a * (1.0 - body_a)
    safe = np.maximum(out_a, 1e-6)[..., None]
    out_rgb = (body * body_a[..., None] + loop_rgb * (loop_a * (1.0 - body_a))[..., None]) / safe
    rgba = np.concatenate([np.clip(out_rgb, 0, 1), np.clip(out_a, 0, 1)[..., None]], axis=-1)
    rgba = bleed_transparent((rgba * 255.0 + 0.5).astype(np.uint8))
    anchors = {f"lm{i}": tuple(float(v) for v in unit_to_px(C[i])) for i in MASK_ANCHOR_LANDMARKS}
    anchors["center"] = alpha_centroid(np.where(cover > 0.5, 255, 0).astype(np.uint8))
    return rgba, anchors, style["description"]
