"""Contact sheets and the `occsynth preview` command."""
import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from occlusion_synth.cli import cli
from occlusion_synth.io import read_image
from occlusion_synth.preview import contact_sheet, crop_face, sheet_size


@pytest.fixture
def template_dir(tmp_path):
    """A user-style template folder: plain RGBA PNGs, category from the sub-folder, no JSON."""
    from PIL import Image

    for cat, colour, (h, w) in (("food", (200, 40, 30), (48, 48)), ("hand", (200, 150, 120), (70, 50)),
                                ("mask", (110, 170, 230), (80, 130))):
        a = np.zeros((h, w), np.uint8)
        cv2.ellipse(a, (w // 2, h // 2), (w // 2 - 2, h // 2 - 2), 0, 0, 360, 255, -1)
        rgba = np.dstack([np.full((h, w, 3), colour, np.uint8), a])
        (tmp_path / "tpl" / cat).mkdir(parents=True)
        Image.fromarray(rgba, "RGBA").save(tmp_path / "tpl" / cat / f"{cat}1.png")
    return tmp_path / "tpl"


def test_contact_sheet_layout():
    tile = np.full((20, 20, 3), 7, np.uint8)
    items = [(tile, tile, np.zeros((20, 20), np.uint8), f"s{i}") for i in range(5)]
    sheet = contact_sheet(items, columns=3)
    assert sheet.shape[:2] == sheet_size(5, 20, 3) and sheet.dtype == np.uint8


def test_crop_face_keeps_landmarks_on_the_face(photo_arrays):
    from occlusion_synth.landmarks import detect

    im = photo_arrays["astronaut.png"]
    face = detect(im, backend="dlib")[0]
    crop, lm = crop_face(im, face.landmarks, 96)
    assert crop.shape == (96, 96, 3)
    assert (lm > 0).all() and (lm < 96).all()
    again = detect(crop, backend="aligned")[0].landmarks  # the predictor agrees on the crop
    assert np.median(np.linalg.norm(again - lm, axis=1)) < 4


def test_preview_cli_writes_sheet(tmp_path, template_dir, photos):
    out = tmp_path / "sheet.png"
    res = CliRunner().invoke(cli, ["preview", "--templates", str(template_dir), "--src",
                                   str(photos["obama.jpg"]), "-n", "5", "-o", str(out), "--size", "64",
                                   "--categories", "food,mask,block", "--backend", "dlib", "--seed", "3"])
    assert res.exit_code == 0, res.output
    sheet = read_image(out)
    assert sheet.shape[:2] == sheet_size(5, 64)
    # in every column the occluded tile (row 2) differs from the original tile (row 1)
    for col in range(5):
        x = 4 + col * (64 + 4)
        original, occluded = sheet[4:68, x:x + 64], sheet[4 + 64 + 10 + 8:4 + 64 + 10 + 8 + 64, x:x + 64]
        assert np.any(original != occluded)
    assert "wrote" in res.output


def test_preview_cli_folder_source_and_bad_category(tmp_path, template_dir, photos):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("astronaut.png", "obama2.jpg"):
        (src / name).write_bytes(photos[name].read_bytes())
    out = tmp_path / "s.png"
    res = CliRunner().invoke(cli, ["preview", "--templates", str(template_dir), "--src", str(src),
                                   "-n", "3", "-o", str(out), "--size", "48", "--backend", "dlib",
                                   "--categories", "hand", "--palette"])
    assert res.exit_code == 0, res.output
    assert read_image(out).shape[:2] == sheet_size(3, 48)
    from PIL import Image

    assert Image.open(out).mode == "P"  # --palette
    res = CliRunner().invoke(cli, ["preview", "--templates", str(template_dir), "--src", str(src),
                                   "-o", str(out), "--categories", "pizza"])
    assert res.exit_code == 2 and "pizza" in res.output
    res = CliRunner().invoke(cli, ["preview", "--src", str(src), "-o", str(out), "--coverage", "0.6-0.2"])
    assert res.exit_code == 2 and "--coverage" in res.output


def test_preview_cli_no_face_is_a_user_error(tmp_path, template_dir):
    from occlusion_synth.io import write_image

    blank = tmp_path / "blank.png"
    write_image(blank, np.full((80, 80, 3), 128, np.uint8))
    res = CliRunner().invoke(cli, ["preview", "--templates", str(template_dir), "--src", str(blank),
                                   "-o", str(tmp_path / "x.png"), "--backend", "dlib"])
    assert res.exit_code == 2 and "no face" in res.output.lower()


def test_crop_face_pads_with_neutral_grey_not_stretched_borders():
    from occlusion_synth.preview import PAD_VALUE

    image = np.zeros((120, 120, 3), np.uint8)
    image[:, :60] = (200, 30, 30)  # a red left half: a stretched border would smear it
    image[:, 60:] = (30, 200, 30)
    lm = np.zeros((68, 2))
    lm[:17] = np.stack([np.linspace(0, 60, 17), np.r_[np.linspace(20, 80, 9), np.linspace(75, 20, 8)]], 1)
    lm[17:27] = np.stack([np.linspace(5, 55, 10), np.full(10, 15)], 1)
    lm[36:42], lm[42:48] = (15, 30), (45, 30)
    crop, _ = crop_face(image, lm, 80)  # the face touches the left edge: the crop reaches past it
    assert (crop[:, 0] == PAD_VALUE).all()
    assert not np.any(np.all(crop[:, :5] == (200, 30, 30), axis=-1))


def test_sample_labels_name_blocks_by_kind():
    from occlusion_synth.preview import sample_label
    from occlusion_synth.transforms import OcclusionParams

    assert sample_label(OcclusionParams(category="block", template="r24")) == "block/r24"
    assert sample_label(OcclusionParams(category="hand", template="hand/fist")) == "hand/fist"
    assert sample_label(OcclusionParams(category="none")) == "none"
