"""Food and drink templates from Debian's public-domain Open Clip Art Library (``openclipart-png``).

The package is not a Python dependency: ``apt-get install openclipart-png`` puts 8000 PNG
renderings under ``/usr/share/openclipart/png`` ($OCCSYNTH_OPENCLIPART points at another copy).
Only gradient-shaded, fairly photo-like drawings are used (listed in :data:`CLIPART`, chosen by
eye). Each is cropped, stripped of a dark cartoon outline where it has one, scaled in
premultiplied space to 240 px on its longer side, given a little rounded-edge shading and grain
(:func:`occlusion_synth.templates.emoji.relief`) and its anchors are guessed like an imported photo's
(:func:`occlusion_synth.templates.importer.guess_anchors`).

Licence: the Open Clip Art Library releases all its clip art into the public domain
(Debian copyright file of openclipart: "public domain"; openclipart.org).
"""
from __future__ import annotations

import os
import subprocess
import zlib
from pathlib import Path
from typing import Optional

import numpy as np

from ..errors import TemplateError
from .alpha import bleed_transparent, crop_to_alpha, resize_rgba

CLIPART_ENV = "OCCSYNTH_OPENCLIPART"
CLIPART_ROOT = Path("/usr/share/openclipart/png")
PACKAGE = "openclipart-png"
INSTALL_HINT = (f"install Debian's public-domain clip art (`apt-get install {PACKAGE}`) or set "
                f"{CLIPART_ENV} to a copy of its png/ folder")
SIZE = 240
FAINT_ALPHA = 96
OUTLINE_WIDTH = 6.0  # pixels at SIZE: the cartoon outlines of the chosen files are 3-6 px wide

# stem: (file under the png/ root, description, strip a dark outline)
CLIPART: dict[str, dict[str, tuple[str, str, bool]]] = {
    "food": {
        "apple_red": ("food/fruit/another_apple_01.png", "glossy red apple with a leaf", False),
        "apple_bitten": ("food/fruit/apple_bitten_dan_gerhard_01.png", "red apple with a bite taken", False),
        "apple_pink": ("food/fruit/apple_martin_schmidt-li_01r.png", "pink-red apple", True),
        "orange": ("food/fruit/orange_dave_pena_01.png", "orange with a leaf", False),
        "plum": ("food/fruit/prune.png", "purple plum", False),
        "watermelon": ("food/fruit/watermelon_james_kilfige_01.png", "small striped watermelon", False),
        "pear_yellow": ("food/fruit/pear.png", "yellow pear with a blush", True),
        "pear_golden": ("food/fruit/pear_02.png", "golden pear", True),
        "pear_green": ("food/fruit/green_pear_01.png", "green pear", True),
        "lemon": ("food/fruit/lemon.png", "lemon", True),
        "strawberry": ("food/fruit/strawberry_01.png", "strawberry", False),
        "strawberry_long": ("food/fruit/strawberry_jonathan_diet_01.png", "strawberry with a stalk", False),
        "bananas": ("food/fruit/bananas_nicu_buculei_01.png", "bunch of bananas", False),
        "croissant": ("food/breads_and_carbs/croissant_gerald_g._01.png", "croissant", False),
        "bread_roll": ("food/breads_and_carbs/bread_01.png", "bread roll", False),
        "sandwich": ("food/sandwich_one_jean-victor_01.png", "filled baguette sandwich", False),
        "submarine_sandwich": ("food/submarine_sandwich_01.png", "long submarine sandwich", False),
        "cupcake": ("food/desserts/muffin_jean_victor_balin_.png", "cupcake with a cherry", False),
        "ice_cream_chocolate": ("food/desserts/cone_soft_chocolate.png", "chocolate soft-serve cone", True),
        "ice_cream_vanilla": ("food/desserts/glace_italienne_jean-vic_01.png", "soft-serve ice cream cone", False),
        "cheese": ("food/dairy/cheese_01.png", "wheel of cheese with a wedge cut", True),
        "corn_cob": ("food/vegetables/corn_cob.png", "corn on the cob with butter", True),
    },
    "drink": {
        "teacup_saucer": ("food/beverages/coffee.png", "white cup of coffee on a saucer", False),
        "mug_red_logo": ("food/beverages/cuppa_schwoo_01.png", "small red mug", False),
        "glass_red_punch": ("food/beverages/drinking_glass_with_red_punch_01.png", "glass of red punch", False),
        "mug_green_tea": ("food/beverages/zielony_kubek_herbaty_-_01.png", "green mug of tea", False),
        "mug_khaki": ("food/beverages/mug.png", "khaki enamel mug", True),
        "bottle_spirits": ("tools/bottle_jean_victor_balin_.png", "glass bottle with a red label", False),
    },
}


def find_clipart(root: Optional[str | os.PathLike] = None) -> Optional[Path]:
    """The openclipart ``png/`` folder: ``root``, else $OCCSYNTH_OPENCLIPART, else the Debian path.

    None when not installed. Raises TemplateError for an explicit path that is not a folder.
    """
    for cand, what in ((root, "--openclipart"), (os.environ.get(CLIPART_ENV), f"${CLIPART_ENV}")):
        if cand:
            p = Path(cand)
            if not p.is_dir():
                raise TemplateError(f"{what} {p}: folder not found")
            return p
    return CLIPART_ROOT if CLIPART_ROOT.is_dir() else None


def package_version() -> str:
    """Installed Debian version of ``openclipart-png`` (``"1:0.18+dfsg-19"``) or ``"unknown"``."""
    try:
        proc = subprocess.run(["dpkg-query", "-W", "-f=${Version}", PACKAGE], capture_output=True,
                              text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return proc.stdout.strip() if proc.returncode == 0 and proc.stdout.strip() else "unknown"


def strip_outline(rgba: np.ndarray, width: float) -> np.ndarray:
    """Remove a dark cartoon outline: pixels within ``width`` px of the edge that are much darker
    than the inside next to them become transparent; the new edge is anti-aliased."""
    import cv2

    a = rgba[..., 3]
    solid = (a > 127).astype(np.uint8)
    dist = cv2.distanceTransform(np.pad(solid, 1), cv2.DIST_L2, 5)[1:-1, 1:-1]
    lum = rgba[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    # brightness of the inside nearby (normalised convolution over pixels deeper than the outline)
    deep = (dist > width + 2).astype(np.float32)
    sigma = 2.5 * width
    local = cv2.GaussianBlur(lum * deep, (0, 0), sigma) / (cv2.GaussianBlur(deep, (0, 0), sigma) + 1e-6)
    dark = (lum < 0.7 * local) & (dist <= width) & (deep.any())
    keep = solid.astype(bool) & ~dark
    n, labels, stats, _ = cv2.connectedComponentsWithStats(keep.astype(np.uint8), connectivity=4)
    if n > 1:
        big = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
        keep = labels == big
    soft = cv2.GaussianBlur(keep.astype(np.float32), (0, 0), 0.7)
    out = rgba.copy()
    out[..., 3] = np.minimum(a, np.clip(soft * 255 + 0.5, 0, 255).astype(np.uint8))
    return out


def clipart_template(path: Path, outline: bool, seed: int) -> np.ndarray:
    """Load one clip-art PNG and turn it into a template (``(h, w, 4) uint8``, 240 px longer side)."""
    from PIL import Image

    from .emoji import drop_small_parts, relief

    try:
        with Image.open(path) as im:
            rgba = np.array(im.convert("RGBA"), dtype=np.uint8)
    except (OSError, ValueError) as exc:
        raise TemplateError(f"{path}: cannot read clip art ({exc})") from None
    # faint parts (drop shadows, see-through glass) would change pixels outside the occlusion mask
    # (alpha >= 0.5): drop what is fainter than FAINT_ALPHA, keeping the anti-aliased ramp above it
    rgba[..., 3] = np.where(rgba[..., 3] >= FAINT_ALPHA, rgba[..., 3], 0)
    rgba = drop_small_parts(rgba)
    crop, _ = crop_to_alpha(rgba, pad=0)
    h, w = crop.shape[:2]
    inner = SIZE - 8
    scale = inner / max(h, w)
    scaled = resize_rgba(crop, (max(1, round(w * scale)), max(1, round(h * scale))))
    if outline:
        scaled = strip_outline(scaled, width=OUTLINE_WIDTH)
    sh, sw = scaled.shape[:2]
    out = np.zeros((sh + 8, sw + 8, 4), np.uint8)
    out[4:4 + sh, 4:4 + sw] = scaled
    out = relief(out, strength=0.3, grain=0.02, seed=seed)
    return bleed_transparent(out)


def clipart_catalogue(categories) -> list[tuple[str, str, str, str, bool]]:
    """``(category, stem, relative file, description, outline)`` in a fixed order."""
    return [(cat, stem, rel, desc, outline) for cat in ("food", "drink") if cat in categories
            for stem, (rel, desc, outline) in CLIPART[cat].items()]


def seed_for(stem: str) -> int:
    return zlib.crc32(stem.encode("utf-8"))
