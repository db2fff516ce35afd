"""WebDataset shards: deterministic writer, resume, `occsynth export` both ways, third-party readers."""
from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from fer_fixtures import make_tiny_manifest
from occlusion_synth.cli import cli
from occlusion_synth.errors import OcclusionSynthError
from occlusion_synth.io import decode_image
from occlusion_synth.shards import ShardWriter, folder_to_shards, iter_shard, read_index


@pytest.fixture(scope="module")
def pairs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("pairs")
    make_tiny_manifest(root, n_per_class=2, size=32, splits=("train", "val", "test"))
    (root / "dataset.json").write_text('{"tool": "occlusion-synth"}\n')
    return root


def _files(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.name != "manifest.csv"}


def _rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _export(*args) -> tuple[int, str]:
    res = CliRunner().invoke(cli, ["export", *map(str, args)])
    return res.exit_code, res.output


def test_folder_to_shards_to_folder_round_trip(pairs, tmp_path):
    code, out = _export(pairs, "--to", "webdataset", "--dest", tmp_path / "sh", "--shard-size", "4")
    assert code == 0, out
    index = read_index(tmp_path / "sh")
    assert {s: e["count"] for s, e in index["splits"].items()} == {"train": 14, "val": 14, "test": 14}
    assert [sh["name"] for sh in index["splits"]["train"]["shards"]] == [f"train-{n:06d}.tar" for n in range(4)]
    assert [sh["count"] for sh in index["splits"]["train"]["shards"]] == [4, 4, 4, 2]
    key, files = next(iter_shard(tmp_path / "sh" / "train-000000.tar"))
    assert sorted(files) == ["clean.png", "json", "mask.png", "occluded.png"]
    meta = json.loads(files["json"])
    assert {"id", "split", "label", "label_name", "category", "template", "coverage", "landmarks"} <= set(meta)
    assert meta["split"] == "train" and meta["category"] == "block" and 0 < meta["coverage"] < 1

    code, out = _export(tmp_path / "sh", "--to", "folder", "--dest", tmp_path / "back")
    assert code == 0, out
    assert _files(tmp_path / "back") == _files(pairs)  # every image and dataset.json byte-identical
    assert _rows(tmp_path / "back" / "manifest.csv") == _rows(pairs / "manifest.csv")


def test_shards_are_deterministic_and_have_fixed_metadata(pairs, tmp_path):
    a = folder_to_shards(pairs, tmp_path / "a", 5)
    b = folder_to_shards(pairs, tmp_path / "b", 5)
    assert [s["sha256"] for e in a["splits"].values() for s in e["shards"]] == \
           [s["sha256"] for e in b["splits"].values() for s in e["shards"]]
    import tarfile

    with tarfile.open(tmp_path / "a" / "val-000000.tar") as tar:
        members = tar.getmembers()
    names = [m.name for m in members]
    assert names == sorted(names, key=lambda n: n.split(".", 1))
    assert {(m.mtime, m.uid, m.gid, m.uname, m.gname, m.mode) for m in members} == {(0, 0, 0, "", "", 0o644)}


def test_resume_rewrites_only_unfinished_shards(pairs, tmp_path):
    dest = tmp_path / "sh"
    ref = folder_to_shards(pairs, tmp_path / "ref", 4)
    with pytest.raises(RuntimeError):
        with ShardWriter(dest, 4) as writer:  # a run killed after 9 train samples: 2 shards done
            rows = _rows(pairs / "manifest.csv")
            from occlusion_synth.shards import sample_key, sample_meta

            for i, row in enumerate(rows[:9]):
                files = {f"{k}.png": (pairs / row[k]).read_bytes() for k in ("clean", "occluded", "mask")}
                writer.add(sample_key(row["id"]), files, dict(sample_meta(row), row=i))
            raise RuntimeError("killed")
    assert sorted(p.name for p in dest.glob("*.tar")) == ["train-000000.tar", "train-000001.tar"]
    assert not (dest / "index.json").exists()
    done = {p.name: p.stat().st_mtime_ns for p in dest.glob("*.tar")}
    code, out = _export(pairs, "--to", "webdataset", "--dest", dest, "--shard-size", "4")
    assert code == 2 and "not empty" in out and out.count("\n") == 1
    code, out = _export(pairs, "--to", "webdataset", "--dest", dest, "--shard-size", "4", "--resume")
    assert code == 0, out
    assert {n: (dest / n).stat().st_mtime_ns for n in done} == done  # finished shards untouched
    for split, entry in ref["splits"].items():
        for sh in entry["shards"]:
            assert (dest / sh["name"]).read_bytes() == (tmp_path / "ref" / sh["name"]).read_bytes(), sh["name"]


def test_export_errors_are_one_line(pairs, tmp_path):
    code, out = _export(tmp_path, "--to", "webdataset", "--dest", tmp_path / "x")
    assert code == 2 and "no manifest.csv" in out and out.count("\n") == 1
    code, out = _export(pairs, "--to", "folder", "--dest", tmp_path / "y")
    assert code == 2 and "index.json" in out and out.count("\n") == 1
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "mine.txt").write_text("keep")
    code, out = _export(pairs, "--to", "webdataset", "--dest", tmp_path / "busy")
    assert code == 2 and "not empty" in out
    assert (tmp_path / "busy" / "mine.txt").read_text() == "keep"
    with pytest.raises(OcclusionSynthError, match="given twice"):
        w = ShardWriter(tmp_path / "dup", 10)
        w.add("a", {}, {"split": "train"})
        w.add("a", {}, {"split": "train"})


def test_webdataset_library_reads_the_shards(pairs, tmp_path):
    import webdataset as wds

    folder_to_shards(pairs, tmp_path / "sh", 4)
    urls = sorted(str(p) for p in (tmp_path / "sh").glob("train-*.tar"))
    samples = list(wds.WebDataset(urls, shardshuffle=False).decode("rgb8"))
    assert len(samples) == 14
    s = samples[0]
    clean_ref = decode_image((pairs / s["json"]["manifest"]["clean"]).read_bytes())
    assert s["clean.png"].shape == (32, 32, 3) and np.array_equal(s["clean.png"], clean_ref)
    assert s["json"]["label"] == int(s["json"]["manifest"]["label"])


def test_hugging_face_datasets_reads_the_shards(pairs, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import datasets

    folder_to_shards(pairs, tmp_path / "sh", 4)
    files = {split: sorted(str(p) for p in (tmp_path / "sh").glob(f"{split}-*.tar")) for split in ("train", "test")}
    ds = datasets.load_dataset("webdataset", data_files=files, cache_dir=str(tmp_path / "hf"))
    assert ds["train"].num_rows == 14 and ds["test"].num_rows == 14
    row = ds["test"][0]
    assert np.asarray(row["clean.png"].convert("RGB")).shape == (32, 32, 3)
    assert row["json"]["split"] == "test" and row["json"]["label"] == int(row["json"]["manifest"]["label"])


def test_jpg_outputs_keep_their_extension(pairs, tmp_path):
    from occlusion_synth.io import read_image, write_image

    src = tmp_path / "jpg"
    rows = _rows(pairs / "manifest.csv")[:3]
    for row in rows:
        for kind in ("clean", "occluded", "mask"):
            rel = row[kind] if kind == "mask" else row[kind][:-4] + ".jpg"
            write_image(src / rel, read_image(pairs / row[kind])[..., 0] if kind == "mask" else read_image(pairs / row[kind]))
            row[kind] = rel
    with open(src / "manifest.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    folder_to_shards(src, tmp_path / "sh", 10)
    _, files = next(iter_shard(tmp_path / "sh" / "train-000000.tar"))
    assert sorted(files) == ["clean.jpg", "json", "mask.png", "occluded.jpg"]
    code, out = _export(tmp_path / "sh", "--to", "folder", "--dest", tmp_path / "back")
    assert code == 0, out
    assert _files(tmp_path / "back") == _files(src)
