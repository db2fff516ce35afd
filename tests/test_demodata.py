"""Embedded demo dataset: layout read back by the RAF-DB reader, determinism, CLI, warp kernels."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from occlusion_synth.cli import cli
from occlusion_synth.demodata import build_demo_dataset
from occlusion_synth.demodata.expressions import EXPRESSIONS
from occlusion_synth.demodata.warps import ThinPlateSpline, apply_affine, similarity
from occlusion_synth.errors import DatasetFormatError, OcclusionSynthError
from occlusion_synth.labels import CANONICAL
from occlusion_synth.sources import demo, rafdb
from occlusion_synth.types import Sample

REPO = Path(__file__).resolve().parents[1]
TINY = dict(per_class=2, test_per_class=1, size=64, seed=3, cache_dir=REPO / ".cache")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, photos) -> Path:
    out = tmp_path_factory.mktemp("demo") / "tiny"
    build_demo_dataset(out, **TINY)
    return out


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_layout_is_read_back_by_the_rafdb_reader(tiny):
    assert (tiny / "EmoLabel" / "list_patition_label.txt").is_file()
    records = list(rafdb.iter_samples(tiny))
    assert all(isinstance(r, Sample) for r in records)
    train = [r for r in records if r.split == "train"]
    test = [r for r in records if r.split == "test"]
    assert len(train) == 14 and len(test) == 7
    assert sorted(r.label for r in train) == sorted(list(range(7)) * 2)
    assert sorted(r.label for r in test) == list(range(7))
    assert [r.id for r in train[:2]] == ["train_00001", "train_00002"]
    img = records[0].load()
    assert img.shape == (64, 64, 3) and img.dtype == np.uint8 and img.std() > 10
    info = json.loads((tiny / "demo_info.json").read_text())
    assert info["options"] == {"per_class": 2, "test_per_class": 1, "size": 64, "seed": 3}
    assert info["counts"]["train"]["happiness"] == 2 and info["counts"]["test"]["anger"] == 1
    assert all(p["licence"] and p["origin"] for p in info["photos"])
    by_id = {s["id"]: s for s in info["samples"]}
    assert {by_id[r.id]["label"] for r in records} == set(range(7))
    assert all(by_id[r.id]["label"] == r.label for r in records)
    # the held-out photo is used by the test split only
    assert {s["photo"] for s in info["samples"] if s["split"] == "train"} == {
        "astronaut.png", "obama.jpg", "obama2.jpg", "biden.jpg"}
    assert any(s["held_out_photo"] for s in info["samples"] if s["split"] == "test")
    # identities.csv: one row per face, for identity- or photo-aware val/test splits
    lines = (tiny / "identities.csv").read_text().splitlines()
    assert lines[0] == "image,split,identity,photo,photo_in_train" and len(lines) == 1 + len(records)
    rows = {ln.split(",")[0]: ln.split(",") for ln in lines[1:]}
    for s in info["samples"]:
        image, split, ident, photo, seen = rows[s["id"] + ".jpg"]
        assert (split, ident, photo) == (s["split"], s["identity"], s["photo"])
        assert seen == str(int(photo in {"astronaut.png", "obama.jpg", "obama2.jpg", "biden.jpg"}))
    assert rows["train_00001.jpg"][2] in {"collins", "obama", "biden"}


def test_demo_reader_attaches_landmarks(tiny):
    records = list(demo.iter_samples(tiny, splits="test", build=False))
    assert len(records) == 7 and all(r.split == "test" for r in records)
    lm = records[0].landmarks
    assert lm.shape == (68, 2) and lm.dtype == np.float32
    # a plausible face inside the frame: eyes above the nose tip above the mouth
    assert 0 < lm[:, 0].mean() < 64 and lm[36:48, 1].mean() < lm[33, 1] < lm[48:68, 1].mean()


def test_demo_reader_builds_missing_root_and_rejects_foreign_folder(tmp_path, photos):
    root = tmp_path / "auto"
    recs = list(demo.iter_samples(root, cache_dir=REPO / ".cache",
                                  build_options=dict(per_class=1, test_per_class=0, size=48)))
    assert len(recs) == 7 and (root / "demo_info.json").is_file()
    (tmp_path / "other").mkdir()
    with pytest.raises(DatasetFormatError, match="list_patition_label.txt"):
        demo.iter_samples(tmp_path / "other")


def test_same_seed_gives_identical_bytes_other_seed_differs(tiny, tmp_path):
    again = tmp_path / "again"
    build_demo_dataset(again, **TINY)
    assert _files(again) == _files(tiny)
    other = tmp_path / "other"
    build_demo_dataset(other, **dict(TINY, seed=4))
    a, b = _files(tiny), _files(other)
    assert a.keys() == b.keys()
    assert a["Image/aligned/train_00001_aligned.jpg"] != b["Image/aligned/train_00001_aligned.jpg"]


def test_refuses_to_overwrite_and_checks_options(tiny, tmp_path):
    with pytest.raises(OcclusionSynthError, match="already exists"):
        build_demo_dataset(tiny, **TINY)
    with pytest.raises(OcclusionSynthError, match="per_class"):
        build_demo_dataset(tmp_path / "x", per_class=0)
    with pytest.raises(OcclusionSynthError, match="unknown demo photo"):
        build_demo_dataset(tmp_path / "x", train_photos=("nobody.jpg",))
    assert not (tmp_path / "x").exists() and not list(tmp_path.glob(".x.tmp-*"))


def test_cli_builds_and_reports(tmp_path, photos):
    runner = CliRunner()
    out = tmp_path / "cli"
    args = ["demo-data", str(out), "--per-class", "1", "--test-per-class", "1", "--size", "48",
            "--cache", str(REPO / ".cache"), "-q"]
    res = runner.invoke(cli, args)
    assert res.exit_code == 0, res.output
    assert "wrote 7 train + 7 test faces" in res.output
    assert len(list((out / "Image" / "aligned").glob("*_aligned.jpg"))) == 14
    res = runner.invoke(cli, args)  # exists now
    assert res.exit_code == 2 and "already exists" in res.output
    res = runner.invoke(cli, ["demo-data", str(tmp_path / "bad"), "--per-class", "0"])
    assert res.exit_code == 2 and "--per-class" in res.output
    res = runner.invoke(cli, ["demo-data", "--help"])
    assert res.exit_code == 0 and "--test-per-class" in res.output and "RAF-DB" in res.output


def test_similarity_recovers_a_known_transform(rng):
    src = rng.uniform(0, 100, size=(10, 2))
    a = np.radians(17.0)
    m = np.array([[1.3 * np.cos(a), -1.3 * np.sin(a), 5.0], [1.3 * np.sin(a), 1.3 * np.cos(a), -7.0]])
    assert np.allclose(similarity(src, apply_affine(m, src)), m, atol=1e-9)


def test_thin_plate_spline_interpolates_and_is_affine_exact(rng):
    src = rng.uniform(0, 100, size=(20, 2))
    dst = src + rng.normal(0, 3, size=src.shape)
    tps = ThinPlateSpline(src, dst, regularization=0.0)
    assert np.allclose(tps(src), dst, atol=1e-6)
    m = np.array([[0.9, 0.1, 3.0], [-0.2, 1.1, 1.0]])
    affine = ThinPlateSpline(src, apply_affine(m, src), regularization=0.0)
    q = rng.uniform(0, 100, size=(50, 2))
    assert np.allclose(affine(q), apply_affine(m, q), atol=1e-6)


def test_every_basic_class_has_an_expression_definition():
    assert set(EXPRESSIONS) == set(CANONICAL[:7])
    assert EXPRESSIONS["neutral"] == [] and all(EXPRESSIONS[c] for c in CANONICAL[1:7])
