"""Regenerate the shipped template library (``assets/``) deterministically.

``mask`` templates are drawn by :mod:`occlusion_synth.templates.masks` (project code, MIT);
``food``, ``drink`` and ``hand`` are rendered from the Noto Color Emoji font (Apache-2.0) by
:mod:`occlusion_synth.templates.emoji`. Given the same font file and library versions every run
writes the same bytes (no timestamps, fixed seeds, sorted JSON).
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

NOTICE = """\
occlusion-synth occluder templates
==================================

mask/*   Drawn by occlusion-synth's own code (occlusion_synth/templates/masks.py,
         `occsynth templates build`). Copyright the occlusion-synth authors.
         Licence: MIT, the same as the project.

food/*, drink/*, hand/*
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
    _remove_stale(out / "mask", {n.split("/")[1] for n in names})
    return names


def build_emoji(out: Path, font_path: Path, categories: Iterable[str]) -> dict[str, list[str]]:
    """Render the emoji catalogue of ``categories`` into ``out/<category>``.

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
        built.setdefault(category, []).append(_write(out, category, stem, rgba, meta))
    for category, names in built.items():
        _remove_stale(out / category, {n.split("/")[1] for n in names})
    return built


def build_library(out: PathLike, font: Optional[PathLike] = None,
                  categories: Iterable[str] = CATEGORIES) -> BuildReport:
    """Build the template library into ``out`` (``out/<category>/<stem>.png + .json``, ``out/NOTICE``).

    Args:
        out: library root (created if missing). Stale templates of the built categories are removed;
            other files (README.md, other folders) are left alone.
        font: Noto Color Emoji font file; None looks in the usual places
            (:func:`occlusion_synth.templates.emoji.find_emoji_font`).
        categories: which categories to build.

    Returns:
        A :class:`BuildReport`; emoji categories are listed in ``skipped`` with the reason and an
        install hint when no font is available.

    Raises:
        TemplateError: unknown category, unreadable font, or a glyph the font lacks.
    """
    from .emoji import EMOJI_CATEGORIES, INSTALL_HINT, find_emoji_font

    out = Path(out)
    categories = list(categories)
    bad = sorted(set(categories) - set(CATEGORIES))
    if bad:
        raise TemplateError(f"unknown template categories {bad} (known: {', '.join(CATEGORIES)})")
    report = BuildReport(out=out)
    out.mkdir(parents=True, exist_ok=True)
    if "mask" in categories:
        report.built["mask"] = build_masks(out)
    emoji_cats = [c for c in categories if c in EMOJI_CATEGORIES]
    if emoji_cats:
        font_path = find_emoji_font(font)
        if font_path is None:
            for c in emoji_cats:
                report.skipped[c] = f"Noto Color Emoji font not found: {INSTALL_HINT}"
        else:
            report.font = font_path
            report.built.update(build_emoji(out, font_path, emoji_cats))
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
