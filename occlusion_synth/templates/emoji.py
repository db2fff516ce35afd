"""Food, drink and hand templates rendered from the Noto Color Emoji font (Apache-2.0 artwork).

The font is not a Python dependency: Debian/Ubuntu ship it as ``fonts-noto-color-emoji``
(``apt-get install fonts-noto-color-emoji``); ``--font PATH`` or ``OCCSYNTH_EMOJI_FONT`` point at
another copy. Glyphs are rendered with ``font.getmask2(text, mode="RGBA")`` (straight alpha, no dark
fringe), cropped, and scaled in premultiplied space to the template size.
"""
from __future__ import annotations

import os
import unicodedata
import zlib
from pathlib import Path
from typing import Optional

import numpy as np

from ..errors import TemplateError
from .alpha import bleed_transparent, crop_to_alpha, resize_rgba

FONT_ENV = "OCCSYNTH_EMOJI_FONT"
FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf",  # Debian, Ubuntu
    "/usr/share/fonts/noto/NotoColorEmoji.ttf",  # Arch
    "/usr/share/fonts/google-noto-color-emoji/NotoColorEmoji.ttf",  # Fedora
    "/usr/local/share/fonts/NotoColorEmoji.ttf",
)
INSTALL_HINT = ("install the Noto Color Emoji font (Debian/Ubuntu: `apt-get install "
                "fonts-noto-color-emoji`) or pass --font PATH / set OCCSYNTH_EMOJI_FONT")
NATIVE_SIZE = 109  # the only pixel size of the font's CBDT bitmap strike
EMOJI_CATEGORIES = ("food", "drink", "hand")

# skin tone modifiers (Fitzpatrick 1-2 .. 6)
TONES = {"light": "\U0001F3FB", "mediumlight": "\U0001F3FC", "medium": "\U0001F3FD",
         "mediumdark": "\U0001F3FE", "dark": "\U0001F3FF"}

FOOD = {
    "apple": "\U0001F34E", "banana": "\U0001F34C", "hamburger": "\U0001F354", "pizza": "\U0001F355",
    "doughnut": "\U0001F369", "cookie": "\U0001F36A", "soft_ice_cream": "\U0001F366",
    "shortcake": "\U0001F370", "chocolate_bar": "\U0001F36B", "grapes": "\U0001F347",
    "hot_dog": "\U0001F32D", "croissant": "\U0001F950", "strawberry": "\U0001F353",
    "sandwich": "\U0001F96A", "taco": "\U0001F32E", "peach": "\U0001F351", "carrot": "\U0001F955",
    "watermelon": "\U0001F349", "pear": "\U0001F350", "bagel": "\U0001F96F",
}
DRINK = {
    # (hot beverage and teacup are left out: their steam is drawn over the cup and cannot be cut off)
    "clinking_beer_mugs": "\U0001F37B", "champagne_bottle": "\U0001F37E", "cup_with_straw": "\U0001F964",
    "beverage_box": "\U0001F9C3", "wine_glass": "\U0001F377", "beer_mug": "\U0001F37A",
    "glass_of_milk": "\U0001F95B", "tropical_drink": "\U0001F379", "bubble_tea": "\U0001F9CB",
    "baby_bottle": "\U0001F37C", "clinking_glasses": "\U0001F942", "cocktail": "\U0001F378",
    "mate": "\U0001F9C9", "tumbler_glass": "\U0001F943", "sake": "\U0001F376",
}
# hand poses, each shown in the skin tones listed (so every tone appears several times)
HAND_POSES = {
    "raised_hand": ("\u270B", ("light", "dark")),
    "back_of_hand": ("\U0001F91A", ("medium", "mediumlight")),
    "waving_hand": ("\U0001F44B", ("mediumdark", "light")),
    "crossed_fingers": ("\U0001F91E", ("mediumlight",)),
    "victory_hand": ("\u270C", ("dark", "medium")),
    "thumbs_up": ("\U0001F44D", ("medium", "light")),
    "ok_hand": ("\U0001F44C", ("mediumdark",)),
    "call_me_hand": ("\U0001F919", ("mediumlight",)),
    "splayed_hand": ("\U0001F590", ("mediumdark", "light")),
    "index_up": ("\u261D", ("dark",)),
    "fist": ("\U0001F44A", ("medium", "mediumlight")),
    "pinched_fingers": ("\U0001F90C", ("light",)),
    "palm_up": ("\U0001FAF4", ("dark",)),
}
# direction from the palm to the wrist in the Noto artwork (checked by eye); the oncoming fist
# points at the viewer, so it has no wrist anchor
WRIST_DIRECTION = {"palm_up": (-1.0, 0.0), "call_me_hand": (-1.0, 0.35), "fist": None}


def find_emoji_font(font: Optional[str | os.PathLike] = None) -> Optional[Path]:
    """Path of the Noto Color Emoji font: ``font`` if given, else $OCCSYNTH_EMOJI_FONT, else the
    usual system locations. None when not found (an explicit ``font`` that is missing raises).

    Raises:
        TemplateError: ``font`` was given but is not a file.
    """
    if font is not None:
        p = Path(font)
        if not p.is_file():
            raise TemplateError(f"--font {p}: font file not found")
        return p
    env = os.environ.get(FONT_ENV)
    if env:
        p = Path(env)
        if not p.is_file():
            raise TemplateError(f"${FONT_ENV}={env}: font file not found")
        return p
    for cand in FONT_CANDIDATES:
        if Path(cand).is_file():
            return Path(cand)
    return None


def font_revision(path: Path) -> str:
    """The font's revision from its ``head`` table (``"2.042"``), or ``"unknown"``."""
    import struct

    try:
        with open(path, "rb") as fh:
            header = fh.read(12)
            (count,) = struct.unpack(">H", header[4:6])
            directory = fh.read(16 * count)
            for i in range(count):
                tag, _, offset, _ = struct.unpack(">4sIII", directory[16 * i:16 * i + 16])
                if tag == b"head":
                    fh.seek(offset + 4)
                    (fixed,) = struct.unpack(">i", fh.read(4))
                    return f"{fixed / 65536:.3f}"
    except (OSError, struct.error):
        pass
    return "unknown"


def load_font(path: Path):
    """Open the colour emoji font at its native bitmap size."""
    from PIL import ImageFont

    try:
        return ImageFont.truetype(str(path), NATIVE_SIZE)
    except OSError as exc:
        raise TemplateError(f"{path}: cannot open as a colour emoji font at {NATIVE_SIZE} px ({exc})") from None


def render_glyph(font, text: str) -> np.ndarray:
    """Render one emoji (a code point or a sequence such as hand + skin tone) to RGBA.

    Returns:
        ``(h, w, 4) uint8`` straight alpha at the font's native size, uncropped.

    Raises:
        TemplateError: the font lacks the glyph (empty bitmap), or the sequence did not combine
            into one glyph (e.g. a skin tone rendered as a separate swatch).
    """
    label = " ".join(f"U+{ord(c):04X}" for c in text)
    try:
        mask, _ = font.getmask2(text, mode="RGBA")
    except (OSError, ValueError) as exc:
        raise TemplateError(f"emoji {label}: cannot render ({exc})") from None
    w, h = mask.size
    if w == 0 or h == 0:
        raise TemplateError(f"emoji {label}: the font has no glyph for it (empty bitmap)")
    rgba = np.asarray(mask, dtype=np.uint8).reshape(h, w, 4)
    if not rgba[..., 3].any():
        raise TemplateError(f"emoji {label}: the font has no glyph for it (empty alpha)")
    # a sequence the font cannot ligate comes out as several glyphs side by side
    ref_w = font.getmask2("\U0001F34E", mode="RGBA")[0].size[0]
    if w > 1.3 * ref_w:
        raise TemplateError(f"emoji {label}: rendered as {w / ref_w:.1f} glyphs, not one "
                            "(font too old for this sequence, or no text shaping: Pillow needs libraqm)")
    return np.ascontiguousarray(rgba)


LIGHT = np.array([-0.35, -0.6, 1.0]) / np.linalg.norm([-0.35, -0.6, 1.0])


def relief(rgba: np.ndarray, strength: float, grain: float, seed: int) -> np.ndarray:
    """Give a flat-shaded glyph some volume: rounded-edge shading lit from the top left, plus grain.

    The height field is a rounded profile from the distance to the glyph's edge plus a little of
    the glyph's own luminance (so drawn creases stay visible); ``strength`` blends the Lambert
    factor in, ``grain`` is the standard deviation of multiplicative fine noise (skin texture).
    """
    import cv2

    alpha = rgba[..., 3].astype(np.float32) / 255.0
    h, w = alpha.shape
    dist = cv2.distanceTransform((alpha > 0.5).astype(np.uint8), cv2.DIST_L2, 5)
    radius = 0.10 * max(h, w)
    x = np.clip(dist / radius, 0.0, 1.0)
    lum = rgba[..., :3].astype(np.float32).mean(-1) / 255.0
    height = (cv2.GaussianBlur(radius * np.sqrt(1.0 - (1.0 - x) ** 2), (0, 0), 1.5)
              + 4.0 * cv2.GaussianBlur(lum, (0, 0), 2.0))
    gy, gx = np.gradient(height)
    n = np.stack([-gx, -gy, np.ones_like(gx)], axis=-1)
    n /= np.linalg.norm(n, axis=-1, keepdims=True)
    lam = (0.5 + 0.5 * np.clip(n @ LIGHT, 0.0, 1.0)) / (0.5 + 0.5 * LIGHT[2])
    factor = 1.0 + strength * (lam - 1.0)
    if grain > 0:
        noise = cv2.GaussianBlur(np.random.default_rng(seed).standard_normal((h, w)).astype(np.float32), (0, 0), 0.8)
        factor = factor * (1.0 + grain * noise / (noise.std() + 1e-6))
    out = rgba.copy()
    out[..., :3] = np.clip(rgba[..., :3] * factor[..., None] + 0.5, 0, 255).astype(np.uint8)
    return out


def glyph_template(font, text: str, size: int = 256, pad: int = 4, grain: float = 0.0) -> np.ndarray:
    """Render, crop to the glyph and scale so the longer side is ``size`` (incl. ``pad``) pixels,
    then add :func:`relief` shading (and ``grain``).

    Returns:
        ``(h, w, 4) uint8`` straight alpha, transparent RGB bled from the nearest visible pixel.
    """
    rgba = drop_small_parts(render_glyph(font, text))
    crop, _ = crop_to_alpha(rgba, pad=0)
    h, w = crop.shape[:2]
    inner = size - 2 * pad
    scale = inner / max(h, w)
    new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
    scaled = resize_rgba(crop, (new_w, new_h))
    out = np.zeros((new_h + 2 * pad, new_w + 2 * pad, 4), np.uint8)
    out[pad:pad + new_h, pad:pad + new_w] = scaled
    out = relief(out, strength=0.5, grain=grain, seed=zlib.crc32(text.encode("utf-8")))
    return bleed_transparent(out)


def drop_small_parts(rgba: np.ndarray, min_fraction: float = 0.15) -> np.ndarray:
    """Remove detached decorations (motion lines, steam, sparkles) from a glyph.

    Keeps the connected parts of the visible footprint whose area is at least ``min_fraction`` of
    the largest part: on a face, a waving hand's motion arcs or a cup's steam would float in the air.
    """
    import cv2

    from .alpha import keep_main_parts

    # parts are found on the clearly visible pixels, so faint anti-aliasing does not join them
    solid = (rgba[..., 3] > 64).astype(np.uint8)
    kept = keep_main_parts(solid, min_fraction)
    if kept is solid:
        return rgba
    # grow the kept parts by 2 px to take their soft edges back
    kept = cv2.dilate(kept, np.ones((5, 5), np.uint8)) > 0
    out = rgba.copy()
    out[~kept] = 0
    return out


def wrist_anchor(alpha: np.ndarray, direction: tuple[float, float], band: float = 6.0) -> tuple[float, float]:
    """Where a hand glyph's arm would continue: the middle of its extreme part along ``direction``.

    Args:
        alpha: ``(h, w) uint8`` alpha of the hand template.
        direction: unit-ish ``(dx, dy)`` from the palm towards the wrist (``(0, 1)``: downwards).
        band: depth in pixels of the extreme part that is averaged.

    Returns:
        ``(x, y)`` template pixels.
    """
    ys, xs = np.nonzero(alpha > 200)
    d = np.asarray(direction, np.float64)
    proj = xs * d[0] + ys * d[1]
    sel = proj >= proj.max() - band * np.linalg.norm(d)
    return float(xs[sel].mean()), float(ys[sel].mean())


def describe(text: str) -> str:
    """``"U+270B U+1F3FD (RAISED HAND, EMOJI MODIFIER FITZPATRICK TYPE-4)"``."""
    codes = " ".join(f"U+{ord(c):04X}" for c in text)
    names = ", ".join(unicodedata.name(c, "?") for c in text)
    return f"{codes} ({names})"


def emoji_catalogue(categories=EMOJI_CATEGORIES) -> list[tuple[str, str, str]]:
    """The shipped emoji templates as ``(category, stem, text)`` in a fixed order."""
    out = []
    if "food" in categories:
        out += [("food", stem, ch) for stem, ch in FOOD.items()]
    if "drink" in categories:
        out += [("drink", stem, ch) for stem, ch in DRINK.items()]
    if "hand" in categories:
        for pose, (ch, tones) in HAND_POSES.items():
            out += [("hand", f"{pose}_{tone}", ch + TONES[tone]) for tone in tones]
    return out
