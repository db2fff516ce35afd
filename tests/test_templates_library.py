"""The shipped occluder library: size per category, realism proxies, anchors, and a reproducible build.

Built vs shipped assets are compared by decoded pixels with a tolerance of one grey level (the
shipped files were built on another machine, and floating-point drawing may round differently);
byte equality is only asserted between two builds on this machine. The food and clip-art drink
templates need Debian's ``openclipart-png``: those comparisons are skipped, with the reason, where
it is not installed.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from occlusion_synth.templates import assets_dir, load_templates, validate_templates
from occlusion_synth.templates import build as build_mod
from occlusion_synth.templates import clipart, hands, solids
from occlusion_synth.templates.build import build_library

CLIPART = clipart.find_clipart()
needs_clipart = pytest.mark.skipif(CLIPART is None, reason="Debian's openclipart-png is not installed "
                                   "(apt-get install openclipart-png): food and clip-art drinks cannot be rebuilt")
PIXEL_TOLERANCE = 1
ANCHOR_TOLERANCE = 0.01


@pytest.fixture(scope="module")
def shipped():
    return load_templates()


def _close(a, b, tol: float) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k], tol) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y, tol) for x, y in zip(a, b))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return abs(a - b) <= tol + 1e-9
    return a == b


def assert_matches_shipped(built: Path, names: list[str]) -> None:
    """Each built ``category/stem`` has the shipped pixels (within 1 grey level) and sidecar."""
    root = assets_dir()
    for name in names:
        for suffix in (".png", ".json"):
            assert (root / f"{name}{suffix}").is_file(), f"{name}{suffix} not shipped: run `occsynth templates build`"
        with Image.open(built / f"{name}.png") as a, Image.open(root / f"{name}.png") as b:
            assert a.mode == b.mode and a.size == b.size, name
            worst = int(np.abs(np.asarray(a).astype(np.int16) - np.asarray(b).astype(np.int16)).max())
        assert worst <= PIXEL_TOLERANCE, f"{name}: pixels differ by {worst} grey levels; assets are stale"
        ja = json.loads((built / f"{name}.json").read_text())
        jb = json.loads((root / f"{name}.json").read_text())
        if "source" in ja and "openclipart-png" in ja["source"]:
            # the package version is part of the source line; compare the rest
            ja["source"], jb["source"] = ja["source"].split(", file ")[-1], jb["source"].split(", file ")[-1]
        assert _close(ja, jb, ANCHOR_TOLERANCE), f"{name}.json differs from the shipped sidecar"


def test_every_category_has_at_least_twenty_templates(shipped):
    counts = {c: len(shipped.by_category(c)) for c in ("food", "hand", "drink", "mask")}
    assert all(n >= 20 for n in counts.values()), counts
    assert validate_templates(assets_dir()) == []


def test_no_emoji_left_in_the_default_library(shipped):
    assert not [t.name for t in shipped if "Noto Color Emoji" in t.source or t.licence == "Apache-2.0"]


def test_licences_are_recorded_and_clean(shipped):
    allowed = {"food": {"public-domain"}, "drink": {"public-domain", "MIT"}, "hand": {"MIT"}, "mask": {"MIT"}}
    for t in shipped:
        assert t.licence in allowed[t.category], (t.name, t.licence)
        assert t.source
        if t.licence == "public-domain":
            assert "openclipart-png" in t.source and ", file " in t.source
    notice = (assets_dir() / "NOTICE").read_text()
    assert "public domain" in notice and "openclipart" in notice and "hands.py" in notice


def _shading_spread(tpl) -> float:
    """Std of luminance over the opaque interior (a flat-coloured sticker has little)."""
    a = tpl.alpha
    lum = tpl.rgba[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    return float(lum[a == 255].std())


def test_rendered_hands_and_drinks_are_shaded_not_flat(shipped):
    # volumetric shading: the lit side is brighter than the shaded side of every rendered object
    for t in shipped.by_category("hand") + [t for t in shipped.by_category("drink") if t.licence == "MIT"]:
        a = t.alpha == 255
        lum = t.rgba[..., :3].astype(np.float32).mean(-1)
        cols = np.nonzero(a.any(0))[0]
        left = lum[:, cols[: len(cols) // 4]][a[:, cols[: len(cols) // 4]]].mean()
        right = lum[:, cols[-len(cols) // 4:]][a[:, cols[-len(cols) // 4:]]].mean()
        assert left > right, t.name  # lit from the top left
        assert _shading_spread(t) > 6.0, t.name


def test_hand_poses_tones_and_anchors(shipped):
    hand = shipped.by_category("hand")
    poses = {t.name.split("/")[1].rsplit("_", 1)[0] for t in hand}
    assert len(poses) >= 8
    assert {t.name.rsplit("_", 1)[1] for t in hand} == set(hands.SKIN_TONES)
    for t in hand:
        w, h = t.size
        wx, wy = t.anchors["wrist"]
        gx, gy = t.anchors["grip"]
        assert wy > 0.9 * h and t.alpha[min(h - 1, int(wy)), int(wx)] > 0, t.name   # the arm leaves at the bottom
        assert gy < wy and t.alpha[int(gy), int(gx)] == 255, t.name


def test_drink_rim_and_grip_anchors(shipped):
    for t in shipped.by_category("drink"):
        w, h = t.size
        rx, ry = t.anchors["rim"]
        gx, gy = t.anchors["grip"]
        assert ry < 0.2 * h, t.name
        assert gy > ry and t.alpha[int(gy), int(gx)] > 0, t.name


def test_glass_is_see_through_and_cans_are_opaque():
    glass = solids.render_drink(solids.DRINKS["glass_water"], 120, 0)
    can = solids.render_drink(solids.DRINKS["can_cola"], 120, 0)
    inner = lambda rgba: rgba[30:100, rgba.shape[1] // 2 - 5: rgba.shape[1] // 2 + 5, 3]  # noqa: E731
    assert inner(can).min() == 255
    assert inner(glass).min() < 200   # the empty upper part of the glass lets the face show through


def test_build_is_deterministic_and_matches_shipped_for_drawn_sources(tmp_path, monkeypatch):
    # two builds on this machine are byte-identical; the drawn sources match the shipped pixels
    monkeypatch.setattr(hands, "HAND_CATALOGUE", {"fist": ("dark",), "victory": ("light",)})
    monkeypatch.setattr(solids, "DRINKS", {k: solids.DRINKS[k] for k in ("mug_blue", "wine_glass_red")})
    monkeypatch.setenv(clipart.CLIPART_ENV, "")
    monkeypatch.setattr(clipart, "CLIPART_ROOT", tmp_path / "no-clipart")
    r1 = build_library(tmp_path / "a", categories=["hand", "drink"])
    r2 = build_library(tmp_path / "b", categories=["hand", "drink"])
    assert r1.built == r2.built == {"hand": ["hand/fist_dark", "hand/victory_light"],
                                    "drink": ["drink/mug_blue", "drink/wine_glass_red"]}
    assert "openclipart-png" in r1.skipped["drink"] and "food" not in r1.skipped
    for p in sorted((tmp_path / "a").rglob("*.*")):
        assert p.read_bytes() == (tmp_path / "b" / p.relative_to(tmp_path / "a")).read_bytes(), p
    assert_matches_shipped(tmp_path / "a", r1.built["hand"] + r1.built["drink"])


def test_a_partial_build_never_deletes_shipped_templates(tmp_path, monkeypatch):
    # without the clip art, rebuilding drinks into a copy of the library keeps the clip-art drinks
    lib = tmp_path / "lib"
    (lib / "drink").mkdir(parents=True)
    (lib / "drink" / "teacup_saucer.png").write_bytes((assets_dir() / "drink" / "teacup_saucer.png").read_bytes())
    (lib / "drink" / "teacup_saucer.json").write_bytes((assets_dir() / "drink" / "teacup_saucer.json").read_bytes())
    monkeypatch.setattr(solids, "DRINKS", {"can_cola": solids.DRINKS["can_cola"]})
    monkeypatch.setenv(clipart.CLIPART_ENV, "")
    monkeypatch.setattr(clipart, "CLIPART_ROOT", tmp_path / "no-clipart")
    report = build_library(lib, categories=["drink"])
    assert report.skipped["drink"].startswith("clip art not found")
    assert (lib / "drink" / "teacup_saucer.png").is_file() and (lib / "drink" / "can_cola.png").is_file()


@needs_clipart
def test_clipart_build_matches_shipped(tmp_path):
    built = build_mod.build_clipart(tmp_path, CLIPART, ["food", "drink"])
    assert len(built["food"]) >= 20
    assert_matches_shipped(tmp_path, built["food"] + built["drink"])
    again = build_mod.build_clipart(tmp_path / "again", CLIPART, ["food"])
    for name in again["food"]:
        assert (tmp_path / f"{name}.png").read_bytes() == (tmp_path / "again" / f"{name}.png").read_bytes()


def test_missing_clipart_folder_is_reported_in_one_line(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from occlusion_synth.cli import cli

    monkeypatch.setenv(clipart.CLIPART_ENV, "")
    monkeypatch.setattr(clipart, "CLIPART_ROOT", tmp_path / "none")
    result = CliRunner().invoke(cli, ["templates", "build", "--out", str(tmp_path / "x"), "--category", "food"])
    assert result.exit_code == 2
    assert "skipped food: clip art not found: install Debian's public-domain clip art" in result.output
    assert "nothing was built" in result.output
    result = CliRunner().invoke(cli, ["templates", "build", "--out", str(tmp_path / "x"), "--category", "food",
                                      "--openclipart", str(tmp_path)])
    assert result.exit_code == 2 and "clip art file missing" in result.output


def test_no_faint_parts_that_the_occlusion_mask_would_miss(shipped):
    # the occlusion mask is alpha >= 0.5: apart from the soft edge ramp, no template may have
    # see-through parts fainter than that (they would change pixels outside the saved mask)
    import cv2

    for t in shipped:
        a = t.alpha
        interior = cv2.erode((a > 0).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
        faint = (interior & (a < 128)).sum() / max(1, int((a > 0).sum()))
        assert faint < 0.01, (t.name, round(float(faint), 3))
