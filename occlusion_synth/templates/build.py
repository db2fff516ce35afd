"""Regenerate the shipped template library (``assets/``) deterministically.

Sources per category:

* ``mask``: drawn by :mod:`occlusion_synth.templates.masks` (project code, MIT);
* ``hand``: rendered by :mod:`occlusion_synth.templates.hands` (shaded capsule hands, MIT);
* ``drink``: rendered by :mod:`occlusion_synth.templates.solids` (shaded cans, mugs, glasses,
  bottles, MIT) and, when Debian's ``openclipart-png`` is installed, public-domain clip art
  (:mod:`occlusion_synth.templates.clipart`);
* ``food``: public-domain clip art from ``openclipart-png``;
* optionally (``emoji=True``) the older Noto Color Emoji renderings (Apache-2.0,
  :mod:`occlusion_synth.templates.emoji`), named ``emoji_<stem>``.

A source that is not installed is reported in ``BuildReport.skipped`` (one line with the install
hint); the files it would have written are left alone (a partial build never deletes shipped
templates). Given the same inputs and library versions every run writes the same bytes (no
timestamps, fixed seeds, sorted JSON).
"""
from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional

import numpy as np

from ..errors import TemplateError
from ..io import atomic_write_bytes
from .alpha import alpha_centroid
from .library import CATEGORIES, DEFAULT_SCALE_RANGES, PathLike

APACHE_LICENCE = "LICENSE-Apache-2.0"  # shipped in assets/, referred to by NOTICE
EMOJI_SIZE = 240  # longer side of rendered emoji templates, pixels
SIZE = 240  # height of the rendered hands and drinks, pixels

NOTICE = """\
occlusion-synth occluder templates
==================================

mask/*, hand/*, and drink/* whose sidecar licence is "MIT"
         Drawn by occlusion-synth's own code (occlusion_synth/templates/masks.py, hands.py,
         solids.py; `occsynth templates build`). Copyright the occlusion-synth authors.
         Licence: MIT, the same as the project.

food/*, and drink/* whose sidecar licence is "public-domain"
         From the Open Clip Art Library (https://openclipart.org), which releases all its
         clip art into the public domain, as packaged by Debian (openclipart-png,
         /usr/share/openclipart/png; Debian's copyright file: public domain). Each sidecar
         names the package version and the file it was made from.
         Changes made (occlusion_synth/templates/clipart.py): detached parts removed, cropped,
         dark cartoon outlines removed on some, rescaled to 240 px, mild rounded-edge shading
         and grain added.

*/emoji_* (only present when built with `occsynth templates build --emoji`)
         Rendered by occlusion-synth (occlusion_synth/templates/emoji.py) from the
         Noto Color Emoji font, Copyright 2013-2021 Google Inc.
         Licence of the emoji images: Apache License, Version 2.0 (a copy is in
         LICENSE-Apache-2.0 next to this file; https://www.apache.org/licenses/LICENSE-2.0);
         the font file itself: SIL Open Font License 1.1.
         Source: https://github.com/googlefonts/noto-emoji, as packaged by Debian
         (fonts-noto-color-emoji). Each template's sidecar JSON names the font revision and
         the code points it was rendered from.
         Changes made: rendered at the font's bitmap size, detached decorations (motion
         lines, steam, sparkles) removed, cropped, rescaled to 240 px, and a mild
         rounded-edge shading added.
"""


@dataclass
class BuildReport:
    """What :func:`build_library` did.

    Attributes:
        out: the library root written.
        built: category -> template names written.
        skipped: category -> reason it was not built (e.g. emoji font missing).
        font: the emoji font used, if any.
    """

    out: Path
    built: dict[str, list[str]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    font: Optional[Path] = None

    @property
    def count(self) -> int:
        return sum(len(v) for v in self.built.values())


def encode_png(rgba: np.ndarray) -> bytes:
    """``(h, w, 4) uint8`` RGBA -> PNG bytes (deterministic: no metadata, fixed compression)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgba), "RGBA").save(buf, "PNG", compress_level=9)
    return buf.getvalue()


def sidecar_json(category: str, rgba: np.ndarray, anchors: dict, licence: str, source: str,
                 description: str, scale_range: Optional[tuple[float, float]] = None) -> bytes:
    """Sidecar JSON bytes: sorted keys, coordinates rounded to 0.01 px."""
    h, w = rgba.shape[:2]
    meta = {
        "category": category,
        "anchors": {k: [round(float(x), 2), round(float(y), 2)] for k, (x, y) in anchors.items()},
        "scale_range": list(scale_range or DEFAULT_SCALE_RANGES[category]),
        "licence": licence,
        "source": source,
        "description": description,
        "size": [int(w), int(h)],
    }
    text = json.dumps(meta, indent=1, sort_keys=True)
    # one line per [x, y] pair / [min, max] range keeps the files short and readable
    text = re.sub(r"\[\s+([^\[\]{}]*?)\s+\]", lambda m: "[" + re.sub(r",\s+", ", ", m.group(1)) + "]", text)
    return (text + "\n").encode("utf-8")


def _write(out: Path, category: str, stem: str, rgba: np.ndarray, meta: bytes) -> str:
    folder = out / category
    atomic_write_bytes(folder / f"{stem}.png", encode_png(rgba))
    atomic_write_bytes(folder / f"{stem}.json", meta)
    return f"{category}/{stem}"


def _remove_stale(folder: Path, keep: set[str]) -> None:
    """Delete template files of earlier builds that this build no longer produces."""
    if not folder.is_dir():
        return
    for p in sorted(folder.iterdir()):
        if p.suffix in (".png", ".json") and p.stem not in keep:
            p.unlink()


def build_masks(out: Path) -> list[str]:
    """Draw every mask style into ``out/mask``; returns the template names."""
    from .masks import MASK_STYLES, draw_mask

    names = []
    for stem in MASK_STYLES:
        rgba, anchors, description = draw_mask(stem)
        meta = sidecar_json("mask", rgba, anchors, "MIT",
                            f"drawn by occlusion_synth.templates.masks.draw_mask({stem!r})", description)
        names.append(_write(out, "mask", stem, rgba, meta))
    return names


def build_hands(out: Path) -> list[str]:
    """Render every hand pose x skin tone of :data:`hands.HAND_CATALOGUE` into ``out/hand``."""
    from .hands import HAND_CATALOGUE, POSES, render_hand, seed_for
    from .importer import guess_anchors

    names = []
    for pose, tones in HAND_CATALOGUE.items():
        for tone in tones:
            stem = f"{pose}_{tone}"
            rgba = render_hand(pose, tone, SIZE, seed_for(stem))
            # the forearm leaves the template at the bottom edge
            anchors = guess_anchors(rgba[..., 3], "hand", (0.0, 1.0))
            side = "back" if POSES[pose].get("back") else "palm"
            meta = sidecar_json("hand", rgba, anchors, "MIT",
                                f"drawn by occlusion_synth.templates.hands.render_hand({pose!r}, {tone!r})",
                                f"hand, {pose.replace('_', ' ')}, {side} side, {tone} skin")
            names.append(_write(out, "hand", stem, rgba, meta))
    return names


def build_solids(out: Path) -> list[str]:
    """Render every procedural drink of :data:`solids.DRINKS` into ``out/drink``."""
    from .importer import guess_anchors
    from .solids import DRINKS, render_drink, seed_for

    names = []
    for stem, drink in DRINKS.items():
        rgba = render_drink(drink, SIZE, seed_for(stem))
        anchors = guess_anchors(rgba[..., 3], "drink")
        meta = sidecar_json("drink", rgba, anchors, "MIT",
                            f"drawn by occlusion_synth.templates.solids.render_drink(DRINKS[{stem!r}])",
                            drink.description)
        names.append(_write(out, "drink", stem, rgba, meta))
    return names


def build_clipart(out: Path, root: Path, categories: Iterable[str]) -> dict[str, list[str]]:
    """Turn the chosen openclipart files (:data:`clipart.CLIPART`) of ``categories`` into templates.

    Raises:
        TemplateError: a listed file is missing or unreadable (never skipped silently).
    """
    from .clipart import PACKAGE, clipart_catalogue, clipart_template, package_version, seed_for
    from .importer import guess_anchors

    version = package_version()
    built: dict[str, list[str]] = {}
    for category, stem, rel, description, outline in clipart_catalogue(tuple(categories)):
        path = root / rel
        if not path.is_file():
            raise TemplateError(f"{path}: clip art file missing (is {root} a complete {PACKAGE} png/ folder?)")
        rgba = clipart_template(path, outline, seed_for(stem))
        anchors = guess_anchors(rgba[..., 3], category)
        meta = sidecar_json(category, rgba, anchors, "public-domain",
                            f"Open Clip Art Library, Debian {PACKAGE} {version}, file {rel}; "
                            "cropped, rescaled and shaded by occlusion_synth.templates.clipart", description)
        built.setdefault(category, []).append(_write(out, category, stem, rgba, meta))
    return built


def build_emoji(out: Path, font_path: Path, categories: Iterable[str]) -> dict[str, list[str]]:
    """Render the emoji catalogue of ``categories`` into ``out/<category>/emoji_<stem>``.

    Raises:
        TemplateError: a glyph is missing from the font (never written as an empty template).
    """
    from .emoji import (WRIST_DIRECTION, describe, emoji_catalogue, font_revision, glyph_template, load_font,
                        wrist_anchor)

    font = load_font(font_path)
    revision = font_revision(font_path)
    built: dict[str, list[str]] = {}
    for category, stem, text in emoji_catalogue(tuple(categories)):
        # 240 px: the glyphs' native strike is ~128 px, so larger adds bytes, not detail
        rgba = glyph_template(font, text, size=EMOJI_SIZE)
        anchors = {"center": alpha_centroid(rgba[..., 3])}
        pose = stem.rsplit("_", 1)[0]
        if category == "hand" and WRIST_DIRECTION.get(pose, (0.0, 1.0)) is not None:
            anchors["wrist"] = wrist_anchor(rgba[..., 3], WRIST_DIRECTION.get(pose, (0.0, 1.0)))
        meta = sidecar_json(category, rgba, anchors, "Apache-2.0",
                            f"Noto Color Emoji {revision} ({font_path.name}) glyph {describe(text)}; "
                            "cropped, rescaled and shaded by occlusion_synth.templates.emoji",
                            stem.replace("_", " "))
        built.setdefault(category, []).append(_write(out, category, f"emoji_{stem}", rgba, meta))
    return built


def build_library(out: PathLike, font: Optional[PathLike] = None,
                  categories: Iterable[str] = CATEGORIES, clipart: Optional[PathLike] = None,
                  emoji: bool = False) -> BuildReport:
    """Build the template library into ``out`` (``out/<category>/<stem>.png + .json``, ``out/NOTICE``).

    Args:
        out: library root (created if missing). Stale templates of a category are removed only
            when every source of that category was available; other files (README.md, other
            folders) are left alone.
        font: Noto Color Emoji font file (only with ``emoji``); None looks in the usual places.
        categories: which categories to build.
        clipart: the openclipart ``png/`` folder; None looks in $OCCSYNTH_OPENCLIPART and
            ``/usr/share/openclipart/png``.
        emoji: also render the Noto Color Emoji templates (``emoji_<stem>``).

    Returns:
        A :class:`BuildReport`; a source that is not installed is listed in ``skipped`` under its
        category with the install hint.

    Raises:
        TemplateError: unknown category, unreadable font, a glyph the font lacks, a listed
            clip-art file missing.
    """
    from .clipart import INSTALL_HINT as CLIPART_HINT, find_clipart
    from .emoji import EMOJI_CATEGORIES, INSTALL_HINT, find_emoji_font

    out = Path(out)
    categories = list(categories)
    bad = sorted(set(categories) - set(CATEGORIES))
    if bad:
        raise TemplateError(f"unknown template categories {bad} (known: {', '.join(CATEGORIES)})")
    report = BuildReport(out=out)
    out.mkdir(parents=True, exist_ok=True)
    complete: dict[str, bool] = {c: True for c in categories}

    def add(category: str, names: list[str]) -> None:
        report.built.setdefault(category, []).extend(names)

    if "mask" in categories:
        add("mask", build_masks(out))
    if "hand" in categories:
        add("hand", build_hands(out))
    if "drink" in categories:
        add("drink", build_solids(out))
    clip_cats = [c for c in categories if c in ("food", "drink")]
    if clip_cats:
        root = find_clipart(clipart)
        if root is None:
            for c in clip_cats:
                report.skipped[c] = f"clip art not found: {CLIPART_HINT}"
                complete[c] = False
        else:
            for c, names in build_clipart(out, root, clip_cats).items():
                add(c, names)
    if emoji:
        emoji_cats = [c for c in categories if c in EMOJI_CATEGORIES]
        font_path = find_emoji_font(font)
        if font_path is None:
            for c in emoji_cats:
                reason = f"Noto Color Emoji font not found: {INSTALL_HINT}"
                report.skipped[c] = f"{report.skipped[c]}; {reason}" if c in report.skipped else reason
                complete[c] = False
        else:
            report.font = font_path
            for c, names in build_emoji(out, font_path, emoji_cats).items():
                add(c, names)
    for category, names in report.built.items():
        if complete.get(category, False):
            _remove_stale(out / category, {n.split("/")[1] for n in names})
    if report.count:
        atomic_write_bytes(out / "NOTICE", NOTICE.encode("utf-8"))
    if report.font is not None:
        _copy_apache_licence(out)
    return report


def _copy_apache_licence(out: Path) -> None:
    """Ship the Apache-2.0 text the NOTICE refers to next to emoji templates built elsewhere."""
    from .library import assets_dir

    try:
        src = assets_dir() / APACHE_LICENCE
    except TemplateError:
        return
    dst = out / APACHE_LICENCE
    if src.is_file() and src.resolve() != dst.resolve():
        atomic_write_bytes(dst, src.read_bytes())
