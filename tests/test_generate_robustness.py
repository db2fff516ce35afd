"""Bad input never crashes ``occsynth generate``: every broken record lands in skipped.csv.

Also runs the other sources end to end (AffectNet with its provided landmarks and face crops,
FER2013 pixel strings) with the real Occlude and dlib.
"""
from __future__ import annotations

import csv
import json
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from occlusion_synth.cli import cli
from occlusion_synth.io import read_image, write_image
from occlusion_synth.pairs import PairsConfig
from occlusion_synth.pairs import generate_pairs as generate
from occlusion_synth.pairs import read_csv

from test_generate import face_crops  # noqa: E402  (tests/ is on sys.path under pytest)


def png_header_only(path: Path, width: int, height: int) -> None:
    """A valid-looking PNG that claims ``width x height`` pixels (a decompression bomb's header)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def faces(photos):
    return face_crops(photos, 160)


@pytest.fixture(scope="module")
def messy(tmp_path_factory, faces):
    """A class-folder dataset mixing good faces in every pixel format with broken files."""
    root = tmp_path_factory.mktemp("messy")
    happy, sad, bored = root / "happy", root / "sad", root / "bored"
    for d in (happy, sad, bored):
        d.mkdir()
    face = faces[0]
    write_image(happy / "rgb.jpg", face)
    Image.fromarray(faces[1]).convert("L").save(happy / "gray.png")
    Image.fromarray(faces[2]).convert("RGBA").save(happy / "rgba.png")
    Image.fromarray(faces[3]).convert("CMYK").save(happy / "cmyk.jpg")
    gray16 = np.asarray(Image.fromarray(faces[4]).convert("L"), np.uint16) * 257
    Image.fromarray(gray16).save(happy / "sixteen.png")
    assert Image.open(happy / "sixteen.png").mode.startswith("I")
    write_image(happy / "café_ñ.jpg", faces[1])
    write_image(sad / "big.jpg", cv2.resize(face, (600, 600), interpolation=cv2.INTER_CUBIC))
    write_image(sad / "truncated.jpg", face)
    (sad / "truncated.jpg").write_bytes((sad / "truncated.jpg").read_bytes()[:300])
    (sad / "empty.jpg").write_bytes(b"")
    (sad / "notimage.jpg").write_text("this is not a picture\n")
    write_image(sad / "tiny.png", cv2.resize(face, (16, 16), interpolation=cv2.INTER_AREA))
    png_header_only(sad / "bomb.png", 60000, 60000)
    write_image(sad / "noise.png", np.random.default_rng(0).integers(0, 255, (200, 300, 3), np.uint8))
    (sad / "readme.txt").write_text("notes\n")
    write_image(bored / "face.jpg", face)
    return root


def test_bad_inputs_are_skipped_with_reasons(messy, tmp_path):
    out = tmp_path / "out"
    summary = generate(PairsConfig(src="folder", root=str(messy), out=str(out), landmarks="dlib",
                                      max_side=400, categories=("mask", "block")))
    rows = {r["id"]: r for r in read_csv(out / "manifest.csv")}
    skipped = {r["id"]: r["reason"] for r in read_csv(out / "skipped.csv")}
    made = {i.split("_", 2)[2] for i in rows}
    cafe = [m for m in made if m.startswith("cafe_n")]  # non-ASCII name -> ASCII id with a hash
    assert len(cafe) == 1 and made == {"rgb", "gray", "rgba", "cmyk", "sixteen", "big", cafe[0]}
    big = next(r for r in rows.values() if r["id"].endswith("big"))
    assert max(read_image(out / big["clean"]).shape[:2]) <= 400  # huge input downscaled first
    by_name = {k.split("_", 2)[2]: v for k, v in skipped.items()}
    assert by_name["truncated"].startswith("unreadable image")
    assert by_name["empty"].startswith("unreadable image") and "empty" in by_name["empty"]
    assert by_name["notimage"].startswith("unreadable image")
    assert by_name["tiny"].startswith("too small")
    assert by_name["bomb"].startswith("image too large")
    assert by_name["noise"].startswith("no face")
    assert "not an image file" in by_name["readme"]
    assert "not a known expression" in by_name["face"]
    assert summary.skipped_by_reason["unreadable image"] == 3 and summary.internal_errors == 0
    assert json.loads((out / "dataset.json").read_text())["counts"]["skipped"] == len(skipped) == 8


def test_cli_summary_and_exit_status(messy, tmp_path):
    runner = CliRunner()
    res = runner.invoke(cli, ["generate", "--src", "folder", "--root", str(messy), "--out", str(tmp_path / "a"),
                              "--landmarks", "dlib", "--categories", "block", "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "skipped 8 this run" in res.output and "unreadable image: 3" in res.output
    # nothing usable at all: exit 2 with the reasons, no traceback
    broken = tmp_path / "broken" / "happy"
    broken.mkdir(parents=True)
    (broken / "a.jpg").write_bytes(b"")
    (broken / "b.png").write_text("nope")
    res = runner.invoke(cli, ["generate", "--src", "folder", "--root", str(broken.parent),
                              "--out", str(tmp_path / "b"), "--categories", "block", "--no-progress"])
    assert res.exit_code == 2 and "no pair could be generated" in res.output
    assert "unreadable image: 2" in res.output and "Traceback" not in res.output
    assert len(read_csv(tmp_path / "b" / "skipped.csv")) == 2


def test_rafdb_bad_label_lines(faces, tmp_path):
    root = tmp_path / "raf"
    small = [cv2.resize(f, (64, 64), interpolation=cv2.INTER_AREA) for f in faces]
    write_image(root / "Image" / "aligned" / "train_00001_aligned.jpg", small[0])
    write_image(root / "Image" / "aligned" / "train_00002_aligned.jpg", small[1])
    (root / "EmoLabel").mkdir(parents=True)
    (root / "EmoLabel" / "list_patition_label.txt").write_text(
        "train_00001.jpg 4\ntrain_00002.jpg 9\nthis line is wrong\ntrain_00003.jpg 1\n\n")
    res = CliRunner().invoke(cli, ["generate", "--src", "rafdb", "--root", str(root), "--out", str(tmp_path / "o"),
                                   "--landmarks", "aligned", "--categories", "block", "--no-progress"])
    assert res.exit_code == 0, res.output
    reasons = sorted(r["reason"].split(" ")[0] for r in read_csv(tmp_path / "o" / "skipped.csv"))
    assert reasons == ["image", "malformed", "unknown"]
    assert [r["label_name"] for r in read_csv(tmp_path / "o" / "manifest.csv")] == ["happiness"]
    # the label file is fixed: a resumed run now makes the pair the reader skipped before
    (root / "EmoLabel" / "list_patition_label.txt").write_text("train_00001.jpg 4\ntrain_00002.jpg 5\n")
    res = CliRunner().invoke(cli, ["generate", "--src", "rafdb", "--root", str(root), "--out", str(tmp_path / "o"),
                                   "--landmarks", "aligned", "--categories", "block", "--no-progress"])
    assert res.exit_code == 0 and "generated 1 pairs" in res.output and "1 images already done" in res.output
    assert [r["label_name"] for r in read_csv(tmp_path / "o" / "manifest.csv")] == ["happiness", "sadness"]
    assert len(read_csv(tmp_path / "o" / "skipped.csv")) == 2  # the old reader skips are still listed


def test_affectnet_provided_landmarks_and_face_crop(photos, tmp_path):
    from occlusion_synth.landmarks import detect

    root = tmp_path / "affectnet"
    rows = []
    for i, name in enumerate(("astronaut.png", "obama.jpg", "biden.jpg")):
        img = read_image(photos[name])
        s = 320 / max(img.shape[:2])
        img = cv2.resize(img, (round(img.shape[1] * s), round(img.shape[0] * s)), interpolation=cv2.INTER_AREA)
        face = detect(img, "dlib")[0]
        rel = f"{100 + i}/{name.split('.')[0]}.jpg"
        write_image(root / "Manually_Annotated_Images" / rel, img)
        x0, y0, x1, y1 = face.box
        rows.append([rel, x0, y0, x1 - x0, y1 - y0, ";".join(f"{v:.2f}" for v in face.landmarks.ravel()),
                     [1, 2, 8][i], 0.1, 0.2])
    with open(root / "training.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["subDirectory_filePath", "face_x", "face_y", "face_width", "face_height",
                    "facial_landmarks", "expression", "valence", "arousal"])
        w.writerows(rows)
    summary = generate(PairsConfig(src="affectnet", root=str(root), out=str(tmp_path / "o"), size=64,
                                      splits=("train",), categories=("mask", "hand")))
    out = read_csv(tmp_path / "o" / "manifest.csv")
    assert summary.new_pairs == 2 and {r["landmark_source"] for r in out} == {"provided"}
    assert {r["label_name"] for r in out} == {"happiness", "sadness"}
    assert all(read_image(tmp_path / "o" / r["clean"]).shape == (64, 64, 3) for r in out)
    skipped = read_csv(tmp_path / "o" / "skipped.csv")
    assert len(skipped) == 1 and "None" in skipped[0]["reason"]
    assert json.loads((tmp_path / "o" / "dataset.json").read_text())["options"]["crop"] == "face"


def test_fer2013_pixel_strings_end_to_end(faces, tmp_path):
    root = tmp_path / "fer"
    root.mkdir()
    with open(root / "fer2013.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["emotion", "pixels", "Usage"])
        for i, f in enumerate(faces[:3]):
            gray = cv2.resize(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY), (48, 48), interpolation=cv2.INTER_AREA)
            w.writerow([i, " ".join(map(str, gray.ravel())), ["Training", "PublicTest", "PrivateTest"][i]])
    generate(PairsConfig(src="fer2013", root=str(root), out=str(tmp_path / "o"), landmarks="aligned",
                            categories=("block",)))
    out = read_csv(tmp_path / "o" / "manifest.csv")
    assert [(r["split"], r["label_name"]) for r in out] == [("train", "anger"), ("val", "disgust"), ("test", "fear")]
    img = read_image(tmp_path / "o" / out[0]["occluded"])
    assert img.shape == (48, 48, 3)
