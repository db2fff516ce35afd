"""``occsynth templates import``: cut-outs from plain backgrounds, alpha kept, anchors, safety."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from occlusion_synth.cli import cli
from occlusion_synth.errors import TemplateError
from occlusion_synth.templates import load_templates, validate_templates
from occlusion_synth.templates.importer import cut_out, guess_anchors, import_photo


def mug_photo(path: Path, background=(226, 229, 231), noise: float = 3.0) -> Path:
    """A red mug with a ring handle on a plain, slightly noisy background, saved as JPEG/PNG."""
    rng = np.random.default_rng(1)
    img = np.zeros((300, 400, 3), np.uint8)
    img[:] = background
    # a light vertical gradient, as under a lamp
    img = np.clip(img.astype(np.float32) * np.linspace(1.0, 0.93, 300)[:, None, None], 0, 255)
    img = img.astype(np.uint8)
    cv2.rectangle(img, (140, 80), (240, 240), (180, 30, 40), -1)
    cv2.ellipse(img, (240, 160), (40, 45), 0, -90, 90, (180, 30, 40), 14)
    img = np.clip(img + rng.normal(0, noise, img.shape), 0, 255).astype(np.uint8)
    Image.fromarray(img).save(path, quality=92)
    return path


def hand_photo(path: Path) -> Path:
    """A skin-coloured palm with four fingers on blue, cut off by the bottom border (an arm)."""
    img = np.full((300, 300, 3), (40, 90, 200), np.uint8)
    skin = (200, 160, 130)
    cv2.ellipse(img, (150, 200), (70, 80), 0, 0, 360, skin, -1)
    for i, x in enumerate((100, 133, 166, 199)):
        cv2.line(img, (x, 150), (x, int(60 + 10 * abs(i - 1.5))), skin, 26)
    cv2.rectangle(img, (110, 230), (190, 299), skin, -1)
    Image.fromarray(img).save(path)
    return path


def test_grabcut_cuts_the_mug_and_its_handle_hole(tmp_path):
    rgb = np.array(Image.open(mug_photo(tmp_path / "mug.jpg")))
    alpha = cut_out(rgb)
    assert alpha.dtype == np.uint8 and alpha.shape == rgb.shape[:2]
    truth = np.zeros(rgb.shape[:2], np.uint8)
    cv2.rectangle(truth, (140, 80), (240, 240), 1, -1)
    cv2.ellipse(truth, (240, 160), (40, 45), 0, -90, 90, 1, 14)
    got = alpha > 127
    iou = (got & (truth > 0)).sum() / (got | (truth > 0)).sum()
    assert iou > 0.95, iou
    assert alpha[160, 265] == 0, "the hole inside the handle shows the background"
    assert ((alpha > 0) & (alpha < 255)).any(), "soft edge"
    # deterministic (GrabCut and k-means are seeded)
    assert np.array_equal(alpha, cut_out(rgb))


def test_import_writes_a_validated_template_and_prints_the_anchors(tmp_path):
    photo = mug_photo(tmp_path / "red mug.jpg")
    out = tmp_path / "lib"
    result = CliRunner().invoke(cli, ["templates", "import", str(photo), "--category", "drink",
                                      "--out", str(out), "--licence", "CC0-1.0"])
    assert result.exit_code == 0, result.output
    assert "alpha from grabcut" in result.output and "rim (" in result.output and "grip (" in result.output
    png, side = out / "drink" / "red_mug.png", out / "drink" / "red_mug.json"
    assert png.is_file() and side.is_file()
    meta = json.loads(side.read_text())
    assert meta["category"] == "drink" and meta["licence"] == "CC0-1.0"
    assert "red mug.jpg" in meta["source"] and meta["size"] == list(Image.open(png).size)
    assert validate_templates(out) == []
    tpl = load_templates(out).get("drink/red_mug")
    rim_x, rim_y = tpl.anchors["rim"]
    gx, gy = tpl.anchors["grip"]
    w, h = tpl.size
    assert rim_y < 0.15 * h and gy > rim_y + 0.2 * h       # rim at the top, grip on the body below
    assert tpl.alpha[int(gy), int(gx)] == 255
    # cup body spans x 140..240 of the photo, the handle goes right: the rim centre is on the body
    assert rim_x < 0.7 * w


def test_import_keeps_an_existing_alpha_channel(tmp_path):
    rgba = np.zeros((120, 90, 4), np.uint8)
    rgba[..., :3] = (30, 160, 60)
    cv2.circle(rgba, (45, 70), 35, (30, 160, 60, 255), -1, lineType=cv2.LINE_AA)
    cv2.rectangle(rgba, (40, 5), (50, 40), (90, 60, 20, 255), -1)   # the stalk
    photo = tmp_path / "apple.png"
    Image.fromarray(rgba, "RGBA").save(photo)
    result = import_photo(photo, "food", tmp_path / "lib")
    assert result.alpha_from == "alpha channel"
    tpl = load_templates(tmp_path / "lib").get("food/apple")
    # the template is the photo's own alpha, cropped with a 4 px margin, not a new cut-out
    ys, xs = np.nonzero(rgba[..., 3])
    x0, y0 = xs.min(), ys.min()
    crop = rgba[y0:ys.max() + 1, x0:xs.max() + 1, 3]
    assert np.array_equal(tpl.alpha[4:-4, 4:-4], crop)
    gx, gy = result.anchors["grip"]
    assert abs(gx - (45 - x0 + 4)) < 3 and abs(gy - (70 - y0 + 4)) < 3   # the middle of the fruit


def test_hand_wrist_is_where_the_arm_leaves_the_photo(tmp_path):
    result = import_photo(hand_photo(tmp_path / "palm.png"), "hand", tmp_path / "lib")
    w, h = result.size
    wx, wy = result.anchors["wrist"]
    assert wy > 0.9 * h and abs(wx - w / 2) < 0.1 * w
    gx, gy = result.anchors["grip"]
    assert 0.4 * h < gy < 0.8 * h            # the palm, below the fingers
    # the same hand turned a quarter: the arm leaves on the right, so the wrist is on the right
    rgb = np.array(Image.open(tmp_path / "palm.png"))
    Image.fromarray(np.ascontiguousarray(np.rot90(rgb, 1))).save(tmp_path / "palm_left.png")
    turned = import_photo(tmp_path / "palm_left.png", "hand", tmp_path / "lib")
    w, h = turned.size
    assert turned.anchors["wrist"][0] > 0.9 * w   # rot90 (counter-clockwise) moves the bottom edge right


def test_mask_import_gets_landmark_anchors_that_validate(tmp_path):
    img = np.full((220, 300, 3), 235, np.uint8)
    cv2.ellipse(img, (150, 120), (110, 70), 0, 0, 360, (120, 170, 220), -1)
    cv2.line(img, (40, 100), (10, 60), (250, 250, 250), 3)   # a faint ear loop in white on white
    Image.fromarray(img).save(tmp_path / "surgical_blue.png")
    result = import_photo(tmp_path / "surgical_blue.png", "mask", tmp_path / "lib")
    assert {"lm1", "lm8", "lm15", "lm28", "lm30"} <= set(result.anchors)
    lm1, lm15, lm8 = result.anchors["lm1"], result.anchors["lm15"], result.anchors["lm8"]
    assert lm1[0] < lm8[0] < lm15[0] and lm8[1] > lm1[1]
    assert [p for p in validate_templates(tmp_path / "lib") if p.severity == "error"] == []


def test_guess_anchors_drink_rim_is_the_top_middle():
    alpha = np.zeros((100, 60), np.uint8)
    alpha[10:90, 10:50] = 255
    a = guess_anchors(alpha, "drink")
    assert a["rim"][1] < 16 and abs(a["rim"][0] - 29.5) < 1
    assert abs(a["grip"][0] - 29.5) < 1.5 and a["grip"][1] > 30


def test_never_overwrites_unless_forced(tmp_path):
    photo = mug_photo(tmp_path / "mug.png")
    out = tmp_path / "lib"
    runner = CliRunner()
    assert runner.invoke(cli, ["templates", "import", str(photo), "--category", "drink", "--out", str(out)]).exit_code == 0
    target = out / "drink" / "mug.png"
    target.write_bytes(b"user's own file")
    result = runner.invoke(cli, ["templates", "import", str(photo), "--category", "drink", "--out", str(out)])
    assert result.exit_code == 2 and "already exists" in result.output and "--force" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert target.read_bytes() == b"user's own file"
    result = runner.invoke(cli, ["templates", "import", str(photo), "--category", "drink", "--out", str(out),
                                 "--force"])
    assert result.exit_code == 0 and target.read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize("case", ["missing", "not_image", "busy", "empty_alpha", "folder"])
def test_bad_input_is_one_line_exit_2(tmp_path, case):
    if case == "missing":
        photo, why = tmp_path / "nope.jpg", "file not found"
    elif case == "not_image":
        photo, why = tmp_path / "notes.png", "cannot read image"
        photo.write_text("hello")
    elif case == "busy":
        # a cluttered background (random colour blocks): nothing to cut from
        rng = np.random.default_rng(0)
        small = rng.integers(0, 255, (12, 16, 3), dtype=np.uint8)
        photo, why = tmp_path / "busy.png", "background is not plain"
        Image.fromarray(cv2.resize(small, (320, 240), interpolation=cv2.INTER_NEAREST)).save(photo)
    elif case == "empty_alpha":
        photo, why = tmp_path / "clear.png", "fully transparent"
        Image.fromarray(np.zeros((40, 40, 4), np.uint8), "RGBA").save(photo)
    else:
        photo, why = tmp_path, "is a folder"
    result = CliRunner().invoke(cli, ["templates", "import", str(photo), "--category", "food",
                                      "--out", str(tmp_path / "lib")])
    assert result.exit_code == 2, result.output
    assert why in result.output and str(photo) in result.output
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output
    assert not (tmp_path / "lib" / "food").exists() or not any((tmp_path / "lib" / "food").iterdir())


def test_several_photos_import_the_good_ones_and_report_the_bad(tmp_path):
    good = mug_photo(tmp_path / "mug.png")
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8 not really")
    result = CliRunner().invoke(cli, ["templates", "import", str(good), str(bad), "--category", "drink",
                                      "--out", str(tmp_path / "lib")])
    assert result.exit_code == 2
    assert "broken.jpg: cannot read image" in result.output and "1 of 2 photos not imported" in result.output
    assert (tmp_path / "lib" / "drink" / "mug.png").is_file()
    result = CliRunner().invoke(cli, ["templates", "import", str(good), str(bad), "--category", "drink",
                                      "--name", "x"])
    assert result.exit_code == 2 and "one photo only" in result.output


def test_max_size_shrinks_large_cutouts(tmp_path):
    photo = mug_photo(tmp_path / "mug.png")
    result = import_photo(photo, "drink", tmp_path / "lib", max_size=64)
    assert max(result.size) == 64
    with pytest.raises(TemplateError, match="unknown category"):
        import_photo(photo, "shoe", tmp_path / "lib")


def test_large_photos_are_cut_at_reduced_size_with_the_same_result(tmp_path):
    rgb = np.array(Image.open(mug_photo(tmp_path / "mug.png")))
    big = cv2.resize(rgb, (1600, 1200), interpolation=cv2.INTER_CUBIC)
    alpha = cut_out(big)
    assert alpha.shape == big.shape[:2]
    small = cv2.resize(cut_out(rgb), (1600, 1200), interpolation=cv2.INTER_NEAREST) > 127
    agree = ((alpha > 127) == small).mean()
    assert agree > 0.98, agree
