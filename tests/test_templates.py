"""Template library: shipped assets, loader conventions, validation, deterministic build, CLI."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from occlusion_synth.cli import cli
from occlusion_synth.errors import TemplateError
from occlusion_synth.landmarks.schemes import CANONICAL_68, LEFT_EYE, RIGHT_EYE
from occlusion_synth.templates import (CATEGORIES, DEFAULT_SCALE_RANGES, REQUIRED_MASK_ANCHORS, Template,
                                       TemplateLibrary, assets_dir, load_templates, validate_templates)
from occlusion_synth.templates import emoji, masks
from occlusion_synth.templates.alpha import bleed_transparent, resize_rgba
from occlusion_synth.templates.build import build_library

FONT = emoji.find_emoji_font()
needs_font = pytest.mark.skipif(FONT is None, reason="Noto Color Emoji font not installed "
                                "(apt-get install fonts-noto-color-emoji)")


@pytest.fixture(scope="module")
def shipped() -> TemplateLibrary:
    return load_templates()


def disc_rgba(size: int = 40, colour=(200, 30, 30), soft: bool = True) -> np.ndarray:
    """A coloured disc with an anti-aliased (or hard) edge, straight alpha."""
    yy, xx = np.indices((size, size), dtype=np.float32)
    r = np.hypot(xx - size * 0.4, yy - size * 0.55)
    edge = size * 0.3
    alpha = np.clip(edge - r + 0.5, 0, 1) if soft else (r < edge).astype(np.float32)
    out = np.zeros((size, size, 4), np.uint8)
    out[..., :3] = colour
    out[..., 3] = np.round(alpha * 255).astype(np.uint8)
    return out


def save(path: Path, array: np.ndarray, mode: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode).save(path)
    return path


# -- the shipped library -------------------------------------------------------------------------

def test_shipped_library_validates_without_problems():
    problems = validate_templates(assets_dir())
    assert problems == [], "\n".join(map(str, problems))


def test_shipped_categories_have_at_least_ten(shipped):
    assert shipped.categories() == list(CATEGORIES)
    for category in CATEGORIES:
        assert len(shipped.by_category(category)) >= 10, category


def test_shipped_templates_follow_conventions(shipped):
    for tpl in shipped:
        assert tpl.rgba.dtype == np.uint8 and tpl.rgba.ndim == 3 and tpl.rgba.shape[2] == 4
        assert 150 <= max(tpl.size) <= 256, tpl.name
        assert tpl.licence in ("MIT", "Apache-2.0", "public-domain") and tpl.source, tpl.name
        assert "center" in tpl.anchors
        lo, hi = tpl.scale_range
        assert 0 < lo <= hi
        alpha = tpl.alpha
        soft = ((alpha > 0) & (alpha < 255)).sum() / (alpha > 0).sum()
        assert soft > 0.01, f"{tpl.name}: hard alpha edge"
        # transparent RGB already bled from the nearest visible pixel (warp-safe, no black fringe)
        assert np.array_equal(bleed_transparent(tpl.rgba), tpl.rgba), tpl.name
        # the PNG on disk is the same array the loader returns
        assert np.array_equal(np.asarray(Image.open(tpl.path)), tpl.rgba), tpl.name


def _affine_to_canonical(tpl: Template):
    idx, pts = tpl.landmark_anchors()
    src = np.hstack([CANONICAL_68[idx], np.ones((len(idx), 1), np.float32)])
    coef, *_ = np.linalg.lstsq(src, pts, rcond=None)
    return idx, pts, coef


def test_mask_anchors_fit_jaw_and_nose_and_leave_eyes_free(shipped):
    for tpl in shipped.by_category("mask"):
        for key in REQUIRED_MASK_ANCHORS:
            assert key in tpl.anchors, (tpl.name, key)
        assert "lm30" in tpl.anchors or "lm33" in tpl.anchors
        w, h = tpl.size
        alpha = tpl.alpha
        idx, pts, coef = _affine_to_canonical(tpl)
        assert (pts[:, 0] >= 0).all() and (pts[:, 0] < w).all() and (pts[:, 1] >= 0).all() and (pts[:, 1] < h).all()
        # anchors are the canonical 68-point shape in template pixels (an exact similarity)
        fitted = np.hstack([CANONICAL_68[idx], np.ones((len(idx), 1))]) @ coef
        assert np.abs(fitted - pts).max() < 0.05, tpl.name
        # the mask covers the mouth and the nose tip, and not the eyes
        for i in (30, 33, 48, 51, 54, 57, 62, 66):
            x, y = np.array([*CANONICAL_68[i], 1.0]) @ coef
            assert alpha[int(y), int(x)] == 255, (tpl.name, i)
        for i in RIGHT_EYE + LEFT_EYE:
            x, y = np.array([*CANONICAL_68[i], 1.0]) @ coef
            if 0 <= y < h and 0 <= x < w:
                assert alpha[int(y), int(x)] == 0, (tpl.name, i)


def test_hand_wrist_anchors_lie_on_the_hand(shipped):
    hands = shipped.by_category("hand")
    with_wrist = [t for t in hands if "wrist" in t.anchors]
    assert len(with_wrist) >= len(hands) - 2  # the oncoming fist points at the viewer: no wrist
    for tpl in with_wrist:
        x, y = tpl.anchors["wrist"]
        assert tpl.alpha[int(y), int(x)] > 0, tpl.name
        cx, cy = tpl.anchors["center"]
        assert np.hypot(x - cx, y - cy) > 0.25 * max(tpl.size), tpl.name  # at the hand's end
    assert tpl_below("hand/open_palm_light", shipped) and tpl_below("hand/thumb_up_light", shipped)


def tpl_below(name: str, lib: TemplateLibrary) -> bool:
    tpl = lib.get(name)
    return tpl.anchors["wrist"][1] > tpl.anchors["center"][1] + 0.3 * tpl.size[1]


def test_flipped_mask_still_fits_the_canonical_face(shipped):
    from occlusion_synth.templates.library import MIRROR_68

    assert sorted(MIRROR_68) == list(range(68)) and all(MIRROR_68[MIRROR_68[i]] == i for i in range(68))
    tpl = shipped.get("mask/n95_valve_white")
    flip = tpl.flipped()
    assert flip.name == "mask/n95_valve_white_flipped"
    assert np.array_equal(flip.rgba[:, ::-1], tpl.rgba)
    assert np.allclose(flip.anchors["lm1"], (tpl.size[0] - tpl.anchors["lm15"][0], tpl.anchors["lm15"][1]))
    # a mirrored canonical face maps onto the flipped anchors by a similarity, like the original
    idx, pts = flip.landmark_anchors()
    mirrored = CANONICAL_68.copy()
    mirrored[:, 0] = 1.0 - mirrored[:, 0]
    mirrored = mirrored[list(MIRROR_68)]
    src = np.hstack([mirrored[idx], np.ones((len(idx), 1))])
    coef, *_ = np.linalg.lstsq(src, pts, rcond=None)
    assert np.abs(src @ coef - pts).max() < 0.05
    twice = flip.flipped()
    assert np.array_equal(twice.rgba, tpl.rgba)
    assert all(np.allclose(twice.anchors[k], v) for k, v in tpl.anchors.items())


def test_shipped_assets_have_notice_and_readme():
    root = assets_dir()
    notice = (root / "NOTICE").read_text()
    assert "Apache" in notice and "Noto" in notice and "MIT" in notice
    assert (root / "README.md").is_file()
    assert "Apache License" in (root / "LICENSE-Apache-2.0").read_text()


# -- loader conventions ---------------------------------------------------------------------------

def test_plain_png_folder_without_json(tmp_path):
    rgba = disc_rgba(40)
    save(tmp_path / "hand" / "blob.png", rgba)
    save(tmp_path / "food" / "other.png", disc_rgba(30, (20, 200, 20)))
    lib = load_templates(tmp_path)
    assert [t.name for t in lib] == ["food/other", "hand/blob"]
    tpl = lib.get("hand/blob")
    assert tpl.category == "hand" and tpl.licence == "unknown"
    assert tpl.scale_range == DEFAULT_SCALE_RANGES["hand"]
    cx, cy = tpl.anchors["center"]
    assert abs(cx - 40 * 0.4) < 0.5 and abs(cy - 40 * 0.55) < 0.5
    # a category folder itself and a single file load too; the filter keeps one category
    assert len(load_templates(tmp_path / "hand")) == 1
    assert load_templates(tmp_path / "hand" / "blob.png").templates[0].name == "hand/blob"
    assert [t.name for t in load_templates(tmp_path, categories=["food"])] == ["food/other"]
    with pytest.raises(TemplateError, match="no templates of categories"):
        load_templates(tmp_path, categories=["drink"])
    with pytest.raises(TemplateError, match="unknown template categories"):
        load_templates(tmp_path, categories=["hat"])


def test_jpeg_with_separate_mask(tmp_path):
    rgba = disc_rgba(48, (30, 60, 220))
    save(tmp_path / "drink" / "cup.jpg", np.ascontiguousarray(rgba[..., :3]))
    save(tmp_path / "drink" / "cup_mask.png", np.ascontiguousarray(rgba[..., 3]), "L")
    lib = load_templates(tmp_path)
    assert len(lib) == 1  # the _mask file is not a template of its own
    tpl = lib.get("drink/cup")
    assert np.array_equal(tpl.alpha, rgba[..., 3])
    assert np.abs(tpl.rgba[rgba[..., 3] == 255, :3].astype(int) - (30, 60, 220)).max() < 12
    (tmp_path / "drink" / "cup_mask.png").unlink()
    with pytest.raises(TemplateError, match=r"cup\.jpg: no alpha channel and no mask file"):
        load_templates(tmp_path)


def test_sidecar_json_is_used(tmp_path):
    save(tmp_path / "x" / "thing.png", disc_rgba(40))
    meta = {"category": "drink", "anchors": {"center": [5, 6], "grip": [10, 30]},
            "scale_range": [1.1, 1.2], "license": "CC0-1.0", "source": "test"}
    (tmp_path / "x" / "thing.json").write_text(json.dumps(meta))
    tpl = load_templates(tmp_path / "x").get("drink/thing")
    assert tpl.anchors == {"center": (5.0, 6.0), "grip": (10.0, 30.0)}
    assert tpl.scale_range == (1.1, 1.2) and tpl.licence == "CC0-1.0" and tpl.source == "test"


def test_mask_without_json_gets_guessed_landmark_anchors(tmp_path):
    shipped_mask = load_templates(categories=["mask"]).templates[0]
    save(tmp_path / "mask" / "mine.png", shipped_mask.rgba)
    tpl = load_templates(tmp_path).get("mask/mine")
    for key in REQUIRED_MASK_ANCHORS:
        assert key in tpl.anchors
    # the guess from the alpha box lands within a few pixels of the true canonical anchors
    err = [np.hypot(*np.subtract(tpl.anchors[k], shipped_mask.anchors[k])) for k in REQUIRED_MASK_ANCHORS]
    assert max(err) < 8
    problems = validate_templates(tmp_path)
    assert [p.severity for p in problems] == ["warning"] and "guessed" in problems[0].reason


def test_library_api():
    a = Template("food/a", "food", disc_rgba(), {"center": (1.0, 1.0)}, (1.0, 2.0))
    anchors = {"center": (1.0, 1.0), "lm8": (3.0, 4.0), "lm1": (1.0, 2.0)}
    b = Template("mask/b", "mask", disc_rgba(), anchors, (1.0, 2.0))
    lib = TemplateLibrary([b, a])
    assert len(lib) == 2 and [t.name for t in lib] == ["food/a", "mask/b"]
    assert lib.categories() == ["food", "mask"] and lib.by_category("hand") == []
    assert "mask/b" in lib and lib.get("mask/b") is b
    idx, pts = b.landmark_anchors()
    assert idx.tolist() == [1, 8] and pts.tolist() == [[1.0, 2.0], [3.0, 4.0]]
    with pytest.raises(TemplateError, match="no template named"):
        lib.get("food/zzz")
    with pytest.raises(TemplateError, match="duplicate"):
        TemplateLibrary([a, a])


def test_resize_rgba_has_no_dark_fringe():
    small = disc_rgba(24, (250, 40, 40))
    big = resize_rgba(small, (96, 96))
    edge = (big[..., 3] > 0) & (big[..., 3] < 255)
    assert edge.sum() > 20
    assert big[edge, 0].min() > 230  # straight resampling would darken the red towards black


# -- validation -----------------------------------------------------------------------------------

def make_bad_library(root: Path) -> dict[str, str]:
    """A library with one template per failure kind; returns {file name: expected reason}."""
    good = disc_rgba(40)
    save(root / "food" / "good.png", good)
    save(root / "food" / "no_alpha.png", np.ascontiguousarray(good[..., :3]))
    save(root / "food" / "empty.png", np.zeros((40, 40, 4), np.uint8))
    save(root / "food" / "tiny.png", disc_rgba(10))
    save(root / "hand" / "bad_json.png", good)
    (root / "hand" / "bad_json.json").write_text("{not json")
    save(root / "hand" / "bad_range.png", good)
    (root / "hand" / "bad_range.json").write_text(json.dumps({"scale_range": [2.0, 1.0]}))
    save(root / "hand" / "wrong_key.png", good)
    (root / "hand" / "wrong_key.json").write_text(json.dumps({"colour": "red"}))
    save(root / "hand" / "bad_category.png", good)
    (root / "hand" / "bad_category.json").write_text(json.dumps({"category": "hat"}))
    save(root / "hand" / "far_anchor.png", good)
    (root / "hand" / "far_anchor.json").write_text(json.dumps({"anchors": {"center": [400, 5]}}))
    save(root / "drink" / "hard_edge.png", disc_rgba(40, soft=False))
    return {"no_alpha.png": "no alpha channel", "empty.png": "empty alpha", "tiny.png": "too small",
            "bad_json.png": "bad JSON", "bad_range.png": "bad scale_range",
            "wrong_key.png": "unknown keys", "bad_category.png": "unknown category",
            "far_anchor.png": "outside the 40x40 image", "hard_edge.png": "no soft edge"}


def test_validate_reports_each_bad_case_with_reason(tmp_path):
    expected = make_bad_library(tmp_path)
    problems = validate_templates(tmp_path)
    by_file = {p.path.name: p for p in problems}
    assert set(by_file) == set(expected)  # good.png has no problem
    for name, reason in expected.items():
        assert reason in by_file[name].reason, (name, by_file[name].reason)
        assert by_file[name].severity == ("warning" if name == "hard_edge.png" else "error")
    with pytest.raises(TemplateError, match="not found"):
        validate_templates(tmp_path / "missing")


def test_loading_a_bad_template_names_the_file(tmp_path):
    make_bad_library(tmp_path)
    with pytest.raises(TemplateError, match=r"bad_category\.json: unknown category 'hat'"):
        load_templates(tmp_path / "hand")


# -- build ----------------------------------------------------------------------------------------

def _tree_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# Built assets vs the shipped ones (built on another machine): floating-point drawing and
# resampling may round differently on another CPU, so PNGs are compared by decoded pixels with a
# tolerance of ONE grey level per channel, sidecar JSON by value with anchors within 0.01 px (the
# precision they are stored at). Byte equality is only asserted between two builds on one machine.
PIXEL_TOLERANCE = 1
ANCHOR_TOLERANCE = 0.01


def _json_close(a, b, tol: float) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_json_close(a[k], b[k], tol) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_json_close(x, y, tol) for x, y in zip(a, b))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return abs(a - b) <= tol + 1e-9
    return a == b


def assert_same_assets(built: Path, shipped: Path) -> None:
    """Same file names; PNG pixels within :data:`PIXEL_TOLERANCE`, JSON equal up to
    :data:`ANCHOR_TOLERANCE`, other files byte-equal."""
    names = sorted(str(p.relative_to(built)) for p in built.rglob("*") if p.is_file())
    assert names == sorted(str(p.relative_to(shipped)) for p in shipped.rglob("*") if p.is_file()), \
        f"{shipped} is stale: run `occsynth templates build`"
    for name in names:
        a, b = built / name, shipped / name
        if a.suffix == ".png":
            with Image.open(a) as ia, Image.open(b) as ib:
                assert ia.mode == ib.mode and ia.size == ib.size, name
                pa, pb = np.asarray(ia).astype(np.int16), np.asarray(ib).astype(np.int16)
            worst = int(np.abs(pa - pb).max())
            assert worst <= PIXEL_TOLERANCE, f"{name}: pixels differ by up to {worst} grey levels " \
                f"(tolerance {PIXEL_TOLERANCE}); {shipped} is stale: run `occsynth templates build`"
        elif a.suffix == ".json":
            assert _json_close(json.loads(a.read_text()), json.loads(b.read_text()), ANCHOR_TOLERANCE), name
        else:
            assert a.read_bytes() == b.read_bytes(), name


def test_asset_comparison_tolerates_one_grey_level_only(tmp_path):
    rgba = disc_rgba(32)
    save(tmp_path / "a" / "x.png", rgba)
    (tmp_path / "a" / "x.json").write_text(json.dumps({"anchors": {"center": [10.0, 12.5]}}))
    off_by_one = rgba.copy()
    off_by_one[5:9, 5:9, :3] = np.clip(off_by_one[5:9, 5:9, :3].astype(int) + 1, 0, 255)
    save(tmp_path / "b" / "x.png", off_by_one)
    (tmp_path / "b" / "x.json").write_text(json.dumps({"anchors": {"center": [10.01, 12.5]}}))
    assert_same_assets(tmp_path / "a", tmp_path / "b")
    off_by_two = rgba.copy()
    off_by_two[0, 0, 3] = 2
    save(tmp_path / "c" / "x.png", off_by_two)
    (tmp_path / "c" / "x.json").write_text((tmp_path / "a" / "x.json").read_text())
    with pytest.raises(AssertionError, match="up to 2 grey levels"):
        assert_same_assets(tmp_path / "a", tmp_path / "c")
    (tmp_path / "c" / "x.json").write_text(json.dumps({"anchors": {"center": [10.1, 12.5]}}))
    save(tmp_path / "c" / "x.png", rgba)
    with pytest.raises(AssertionError, match="x.json"):
        assert_same_assets(tmp_path / "a", tmp_path / "c")


def test_build_masks_is_deterministic_and_matches_shipped(tmp_path):
    r1 = build_library(tmp_path / "a", categories=["mask"])
    r2 = build_library(tmp_path / "b", categories=["mask"])
    assert r1.count == r2.count >= 10 and not r1.skipped
    a, b = _tree_bytes(tmp_path / "a"), _tree_bytes(tmp_path / "b")
    assert a == b  # two builds on one machine: byte-identical
    assert_same_assets(tmp_path / "a" / "mask", assets_dir() / "mask")  # another machine's build
    assert validate_templates(tmp_path / "a") == []


def test_build_without_sources_skips_categories_clearly(tmp_path, monkeypatch):
    from occlusion_synth.templates import clipart

    monkeypatch.delenv(emoji.FONT_ENV, raising=False)
    monkeypatch.delenv(clipart.CLIPART_ENV, raising=False)
    monkeypatch.setattr(emoji, "FONT_CANDIDATES", (str(tmp_path / "nope.ttf"),))
    monkeypatch.setattr(clipart, "CLIPART_ROOT", tmp_path / "no-clipart")
    # two mask styles are enough here (the full mask build is tested above)
    monkeypatch.setattr(masks, "MASK_STYLES", {k: masks.MASK_STYLES[k] for k in ("surgical_blue", "cloth_dots")})
    report = build_library(tmp_path / "lib", categories=["mask", "food"], emoji=True)
    assert report.built == {"mask": ["mask/surgical_blue", "mask/cloth_dots"]}
    assert "openclipart-png" in report.skipped["food"] and "fonts-noto-color-emoji" in report.skipped["food"]
    result = CliRunner().invoke(cli, ["templates", "build", "--out", str(tmp_path / "x"),
                                      "--category", "food"])
    assert result.exit_code == 2
    assert "skipped food" in result.output and "nothing was built" in result.output
    with pytest.raises(TemplateError, match="font file not found"):
        emoji.find_emoji_font(tmp_path / "missing.ttf")
    monkeypatch.setenv(emoji.FONT_ENV, str(tmp_path / "missing.ttf"))
    with pytest.raises(TemplateError, match="OCCSYNTH_EMOJI_FONT"):
        emoji.find_emoji_font()


@needs_font
def test_build_emoji_templates_validate(tmp_path):
    # emoji renderings are optional (not shipped): they must build and pass the validator
    report = build_library(tmp_path, font=FONT, categories=["hand", "food", "drink"], emoji=True)
    assert report.font == FONT
    assert validate_templates(tmp_path) == []
    names = [n for built in report.built.values() for n in built if "/emoji_" in n]
    assert names and (tmp_path / "LICENSE-Apache-2.0").is_file()


@needs_font
def test_missing_glyph_is_an_error_not_an_empty_template():
    font = emoji.load_font(FONT)
    with pytest.raises(TemplateError, match="no glyph"):
        emoji.render_glyph(font, "\u0378")  # unassigned code point
    with pytest.raises(TemplateError, match="glyphs, not one"):
        emoji.render_glyph(font, "\U0001F34E\U0001F34C")  # two emoji never combine


# -- CLI ------------------------------------------------------------------------------------------

def test_cli_list_and_validate(tmp_path):
    runner = CliRunner()
    result = runner.invoke(cli, ["templates", "list"])
    assert result.exit_code == 0, result.output
    assert "mask (" in result.output and "surgical_blue" in result.output

    make_bad_library(tmp_path)
    result = runner.invoke(cli, ["templates", "validate", str(tmp_path)])
    assert result.exit_code == 1
    assert "tiny.png: too small" in result.output and "8 error(s), 1 warning(s)" in result.output

    result = runner.invoke(cli, ["templates", "validate", str(tmp_path / "drink")])
    assert result.exit_code == 0 and "0 error(s), 1 warning(s)" in result.output

    result = runner.invoke(cli, ["templates", "list", str(tmp_path / "food")])
    assert result.exit_code == 2 and "empty.png: empty alpha" in result.output
