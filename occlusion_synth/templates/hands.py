"""Hands rendered procedurally: a palm, a wrist and jointed fingers as shaded capsules.

Every finger segment is a capsule (a cylinder with round ends, tapering from one radius to
another) with its own depth; the palm and the wrist are flattened capsules. Per pixel the
front-most surface wins (a z-buffer), and its normal gives Lambert shading from the top left with
a warm sub-surface tint in the shade, a weak oily highlight, and contact shadows where one part
lies over another (ambient occlusion from the height field). Knuckle creases, finger nails (back
of the hand) and fine skin grain are painted on. Rendered at 3x and area-reduced for a soft edge.

A pose is a list of capsules in a canonical frame (the wrist at the bottom); skin tones are
applied at render time. Licence: project code, MIT; the templates are the project's own artwork.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from .alpha import bleed_transparent, resize_rgba

SUPERSAMPLE = 3
LIGHT = np.array([-0.4, -0.6, 0.7]) / np.linalg.norm([-0.4, -0.6, 0.7])

SKIN_TONES: dict[str, tuple[int, int, int]] = {
    "light": (236, 196, 170), "mediumlight": (222, 172, 138), "medium": (190, 138, 100),
    "mediumdark": (146, 98, 66), "dark": (96, 62, 44),
}


@dataclass(frozen=True)
class Capsule:
    """A tapered capsule from ``a`` to ``b`` (canvas units, y down) with radii ``ra``/``rb``.

    ``z`` is its depth offset (larger = nearer the viewer); ``flat`` < 1 flattens its cross-section
    (the palm); ``nail`` paints a finger nail near ``b`` (back of the hand).
    """

    a: tuple[float, float]
    b: tuple[float, float]
    ra: float
    rb: float
    z: float = 0.0
    flat: float = 1.0
    nail: bool = False
    crease: bool = False
    group: int = 0  # parts of one group melt together smoothly (a finger's segments, the palm)


def _finger(base: tuple[float, float], angle_deg: float, lengths: tuple[float, ...], radius: float,
            curl: float = 0.0, z: float = 2.0, nail: bool = False, crease: bool = True,
            group: int = 1) -> list[Capsule]:
    """A finger of len(lengths) segments from ``base`` pointing ``angle_deg`` (0 = up, + = right).

    ``curl`` 0..1 bends the finger towards the viewer: seen from the front its segments shorten
    (foreshortening) and come nearer (z grows).
    """
    out = []
    x, y = base
    ang = np.deg2rad(angle_deg)
    r = radius
    if curl >= 0.8:  # folded into the palm: from the front only the knuckle row shows
        ln = 0.55 * lengths[0]
        dx, dy = np.sin(ang) * ln, -np.cos(ang) * ln
        return [Capsule((x, y + 4), (x + dx, y + dy), radius * 1.08, radius * 1.02, z=z + 2.0,
                        nail=False, crease=False, group=group)]
    for i, ln in enumerate(lengths):
        shrink = np.cos(min(1.4, curl * (i + 1) * 0.55))
        dx, dy = np.sin(ang) * ln * shrink, -np.cos(ang) * ln * shrink
        r2 = r * 0.9
        out.append(Capsule((x, y), (x + dx, y + dy), r, r2, z=z + 3.0 * curl * (i + 1),
                           nail=nail and i == len(lengths) - 1 and curl < 0.5,
                           crease=crease and i > 0, group=group))
        x, y, r = x + dx, y + dy, r2
    return out


# finger bases on the palm's top edge (x offsets from the palm centre) and their lengths
FINGERS = {  # name: (x offset, y offset, segment lengths, radius)
    "index": (-23.0, 0.0, (20.0, 14.0, 11.0), 9.2),
    "middle": (-7.0, -3.0, (23.0, 15.0, 12.0), 9.6),
    "ring": (9.0, -1.0, (21.0, 14.0, 11.0), 9.0),
    "little": (24.0, 5.0, (16.0, 11.0, 9.0), 7.8),
}
PALM_CENTRE = (60.0, 95.0)


def _palm(back: bool) -> list[Capsule]:
    cx, cy = PALM_CENTRE
    z = 1.0
    parts = [
        Capsule((cx - 10, cy - 18), (cx - 8, cy + 18), 28.0, 25.0, z=z, flat=0.35),
        Capsule((cx + 10, cy - 16), (cx + 6, cy + 18), 25.0, 23.0, z=z, flat=0.35),
        Capsule((cx - 1, cy + 30), (cx - 1, cy + 75), 22.0, 21.0, z=0.0, flat=0.6),  # wrist and forearm
    ]
    if not back:  # the thenar eminence (ball of the thumb) on the palm side
        parts.append(Capsule((cx - 22, cy + 4), (cx - 14, cy + 26), 13.0, 12.0, z=z + 2, flat=0.6))
    return parts


def pose(name: str) -> list[Capsule]:
    """The capsules of a named pose (see :data:`POSES`)."""
    spec = POSES[name]
    back = spec.get("back", False)
    parts = _palm(back)
    cx, cy = PALM_CENTRE
    top = cy - 40
    for g, (finger, (dx, dy, lengths, radius)) in enumerate(FINGERS.items(), start=1):
        angle = spec.get("spread", 0.0) * (dx / 24.0) + spec.get("tilt", 0.0)
        angle += spec.get("angles", {}).get(finger, 0.0)
        curl = spec.get("curl", {}).get(finger, spec.get("curl_all", 0.0))
        parts += _finger((cx + dx, top + dy + 6), angle, lengths, radius, curl=curl, nail=back,
                         crease=not back, group=g)
    thumb = spec.get("thumb", (-50.0, 0.0))  # (angle, curl)
    parts += _finger((cx - 22, cy + 14), thumb[0], (24.0, 17.0, 13.0), 11.0, curl=thumb[1], z=4.0,
                     nail=back, crease=False, group=len(FINGERS) + 1)
    return parts


POSES: dict[str, dict] = {
    "open_palm": {"spread": 4.0, "thumb": (-55.0, 0.0)},
    "spread_fingers": {"spread": 22.0, "thumb": (-70.0, 0.0)},
    "back_of_hand": {"back": True, "spread": 5.0, "thumb": (-50.0, 0.0)},
    "back_spread": {"back": True, "spread": 18.0, "thumb": (-65.0, 0.0)},
    "fist": {"curl_all": 1.0, "thumb": (-80.0, 0.7), "back": True},
    "pointing": {"curl": {"middle": 1.0, "ring": 1.0, "little": 1.0}, "thumb": (-80.0, 0.6),
                 "angles": {"index": 4.0}},
    "victory": {"curl": {"ring": 1.0, "little": 1.0}, "thumb": (-75.0, 0.6),
                "angles": {"index": -12.0, "middle": 10.0}},
    "relaxed": {"curl_all": 0.35, "spread": 6.0, "thumb": (-45.0, 0.2)},
    "thumb_up": {"curl_all": 1.0, "thumb": (-5.0, 0.0), "back": True},
}
# each pose in these tones (every tone appears several times)
HAND_CATALOGUE: dict[str, tuple[str, ...]] = {
    "open_palm": ("light", "medium", "dark"),
    "spread_fingers": ("mediumlight", "mediumdark"),
    "back_of_hand": ("light", "medium", "dark"),
    "back_spread": ("mediumlight", "mediumdark"),
    "fist": ("light", "medium", "dark"),
    "pointing": ("mediumlight", "mediumdark"),
    "victory": ("light", "dark"),
    "relaxed": ("medium", "mediumlight"),
    "thumb_up": ("mediumdark", "light"),
}


def _render_fields(parts: list[Capsule], H: int, W: int, scale: float):
    """Height field of the capsules: smooth union within a group, front-most group wins.

    Returns:
        ``(height (H, W), normal (H, W, 3), part index (H, W) or -1, position along the part,
        group (H, W) or -1)``.
    """
    ys, xs = np.mgrid[0:H, 0:W].astype(np.float64)
    xs, ys = xs / scale, ys / scale
    groups = sorted({c.group for c in parts})
    best = np.full((H, W), -np.inf)
    idx = np.full((H, W), -1, np.int32)
    grp = np.full((H, W), -1, np.int32)
    along = np.zeros((H, W))
    k = 1.5  # smoothness of the union (canvas units of height)
    for g in groups:
        acc = np.zeros((H, W))
        gbest = np.full((H, W), -np.inf)
        gidx = np.full((H, W), -1, np.int32)
        galong = np.zeros((H, W))
        for i, c in enumerate(parts):
            if c.group != g:
                continue
            ax, ay = c.a
            bx, by = c.b
            vx, vy = bx - ax, by - ay
            ln2 = vx * vx + vy * vy + 1e-9
            t = np.clip(((xs - ax) * vx + (ys - ay) * vy) / ln2, 0, 1)
            r = c.ra + (c.rb - c.ra) * t
            d2 = (xs - ax - t * vx) ** 2 + (ys - ay - t * vy) ** 2
            inside = d2 < r * r
            h = np.where(inside, c.z + c.flat * np.sqrt(np.clip(r * r - d2, 0, None)), -np.inf)
            acc += np.where(inside, np.exp(h / k - 20.0), 0.0)
            win = h > gbest
            gbest[win], gidx[win], galong[win] = h[win], i, t[win]
        with np.errstate(divide="ignore"):
            gh = np.where(acc > 0, k * (np.log(acc) + 20.0), -np.inf)
        win = gh > best
        best[win], idx[win], grp[win], along[win] = gh[win], gidx[win], g, galong[win]
    hf = np.where(idx >= 0, best, 0.0)
    gy, gx = np.gradient(hf * scale)
    normal = np.stack([-gx, -gy, np.ones_like(gx)], axis=-1)
    normal /= np.linalg.norm(normal, axis=-1, keepdims=True)
    return best, normal, idx, along, grp


def render_hand(pose_name: str, tone: str, height: int = 240, seed: int = 0) -> np.ndarray:
    """Render a hand pose in a skin tone to ``(h, w, 4) uint8`` straight alpha (wrist at the bottom)."""
    import cv2

    parts = pose(pose_name)
    pts = np.array([p for c in parts for p in (c.a, c.b)])
    rad = max(max(c.ra, c.rb) for c in parts)
    x0, y0 = pts.min(0) - rad - 3
    x1, y1 = pts.max(0) + rad + 3
    y1 = max(p[1] for c in parts for p in (c.a, c.b))  # cut at the forearm's end (the photo's edge)
    parts = [Capsule((c.a[0] - x0, c.a[1] - y0), (c.b[0] - x0, c.b[1] - y0), c.ra, c.rb, c.z, c.flat,
                     c.nail, c.crease) for c in parts]
    s = SUPERSAMPLE
    scale = height * s / (y1 - y0)
    H, W = height * s, int(np.ceil((x1 - x0) * scale))
    best, normal, idx, along, grp = _render_fields(parts, H, W, scale)
    mask = idx >= 0
    rng = np.random.default_rng(seed)
    skin = np.array(SKIN_TONES[tone], np.float64)
    lam = np.clip(normal @ LIGHT, 0, 1)
    # ambient occlusion: how far a pixel lies below its blurred neighbourhood
    hfield = np.where(mask, best, 0).astype(np.float32)
    ao = np.clip((cv2.GaussianBlur(hfield, (0, 0), 4 * s) - hfield) / 6.0, 0, 1)
    # creases where the front-most part changes (a finger over the palm, between fingers)
    edges = cv2.morphologyEx(grp.astype(np.float32), cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)) > 0
    edge_shadow = cv2.GaussianBlur((edges & mask).astype(np.float32), (0, 0), 1.2 * s)
    shade = (0.30 + 0.70 * lam) * (1 - 0.45 * ao) * (1 - 0.35 * np.clip(edge_shadow * 2.5, 0, 1))
    warm = np.array([1.0, 0.78, 0.72])  # sub-surface scattering reddens the shade
    tint = warm[None, None] + (1 - warm[None, None]) * np.clip(lam, 0, 1)[..., None]
    rgb = skin * shade[..., None] * tint
    half = (LIGHT + np.array([0, 0, 1.0])) / np.linalg.norm(LIGHT + np.array([0, 0, 1.0]))
    spec = np.clip(normal @ half, 0, 1) ** 25
    rgb += 60.0 * spec[..., None]
    for i, c in enumerate(parts):
        sel = idx == i
        if c.crease:  # knuckle crease at the segment's start, on the palm side
            rgb[sel & (along < 0.06)] *= 0.9
        if c.nail:
            ys, xs = np.mgrid[0:H, 0:W].astype(np.float64) / scale
            vx, vy = c.b[0] - c.a[0], c.b[1] - c.a[1]
            ln = np.hypot(vx, vy) + 1e-9
            ux, uy = vx / ln, vy / ln
            qx, qy = xs - (c.b[0] - ux * c.rb * 0.9), ys - (c.b[1] - uy * c.rb * 0.9)
            pa, pb = qx * ux + qy * uy, -qx * uy + qy * ux
            nail = sel & ((pa / (c.rb * 1.1)) ** 2 + (pb / (c.rb * 0.62)) ** 2 <= 1)
            rgb[nail] = rgb[nail] * 0.55 + np.array([245, 215, 205.0]) * 0.45 * shade[nail][:, None]
            rgb[nail] += 70.0 * spec[nail][:, None] ** 0.5
    grain = cv2.GaussianBlur(rng.standard_normal((H, W)).astype(np.float32), (0, 0), 0.8 * s)
    rgb *= (1 + 0.018 * grain / (grain.std() + 1e-6))[..., None]
    out = np.zeros((H, W, 4), np.uint8)
    out[..., :3] = np.clip(rgb + 0.5, 0, 255).astype(np.uint8)
    out[..., 3] = mask.astype(np.uint8) * 255
    out[~mask, :3] = 0
    small = resize_rgba(out, (int(round(W / s)), height))
    return bleed_transparent(small)


def seed_for(stem: str) -> int:
    return zlib.crc32(stem.encode("utf-8"))
