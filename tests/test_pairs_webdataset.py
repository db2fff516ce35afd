"""`generate --format webdataset`: shards through the journal, equal to the folder output, the same
bytes for any worker count, resume per shard, and the round trip to the `webdataset` and HF
`datasets` readers and `fer-pi train`."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from fer_fixtures import one_thread  # noqa: F401  (fixture)
from occlusion_synth.io import decode_image
from occlusion_synth.pairs import PairsConfig, generate_pairs
from occlusion_synth.shards import ShardWriter, iter_shard, member, read_index, shards_to_folder

from test_generate import face_crops, tree_bytes, write_rafdb  # noqa: E402  (tests/ is on sys.path)

KW = dict(src="rafdb", landmarks="aligned", categories=("block", "hand", "mask"), size=48, seed=3,
          val_fraction=0.3)


def shard_bytes(out: Path) -> dict[str, bytes]:
    """The tar shards and index.json of a WebDataset output."""
    return {p.name: p.read_bytes() for p in sorted(out.iterdir()) if p.suffix == ".tar" or p.name == "index.json"}


@pytest.fixture(scope="module")
def raf(photos, tmp_path_factory) -> Path:
    return write_rafdb(tmp_path_factory.mktemp("raf"), face_crops(photos, 56), 28)


@pytest.fixture(scope="module")
def wds(raf, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wds") / "o"
    generate_pairs(PairsConfig(root=str(raf), out=str(out), output="webdataset", shard_size=4, **KW))
    return out


def test_shards_hold_the_folder_output_and_do_not_depend_on_workers(raf, wds, tmp_path):
    folder = tmp_path / "folder"
    generate_pairs(PairsConfig(root=str(raf), out=str(folder), **KW))
    assert not (wds / "manifest.csv").exists() and not (wds / ".occsynth" / "staging").exists()
    index = read_index(wds)
    assert {s: e["count"] for s, e in index["splits"].items()} == {"train": 18, "val": 3, "test": 7}
    assert [sh["count"] for sh in index["splits"]["train"]["shards"]] == [4, 4, 4, 4, 2]
    # back to a folder: every image and manifest row of the folder output, byte for byte
    shards_to_folder(wds, tmp_path / "back")
    expected = {k: v for k, v in tree_bytes(folder).items() if k != "landmarks.jsonl"}
    assert tree_bytes(tmp_path / "back") == expected
    assert (wds / "landmarks.jsonl").read_bytes() == (folder / "landmarks.jsonl").read_bytes()
    two = tmp_path / "two"
    generate_pairs(PairsConfig(root=str(raf), out=str(two), output="webdataset", shard_size=4, workers=2, **KW))
    assert shard_bytes(two) == shard_bytes(wds)


def test_sample_json_has_the_metadata_and_framed_landmarks(wds):
    key, files = next(iter_shard(wds / "val-000000.tar"))
    assert sorted(files) == ["clean.png", "json", "mask.png", "occluded.png"]
    meta = json.loads(files["json"])
    assert {"id", "split", "label", "label_name", "category", "template", "coverage", "landmarks"} <= set(meta)
    assert meta["split"] == "val" and isinstance(meta["label"], int) and 0 < meta["coverage"] < 1
    lm = np.asarray(meta["landmarks"])
    clean = decode_image(member(files, "clean"))
    assert clean.shape == (48, 48, 3) and lm.shape == (68, 2)
    assert (lm > -1).all() and (lm < 48).all() and np.ptp(lm[:, 0]) > 20  # a face across the 48 px frame
    mask = decode_image(member(files, "mask"))[..., 0]
    assert set(np.unique(mask)) == {0, 255}  # coverage is the occluded share of the face, not of the frame
    assert float(meta["manifest"]["occluded_fraction"]) == pytest.approx(meta["coverage"])


def test_a_run_with_more_samples_rewrites_only_what_changed(raf, wds, tmp_path):
    out = tmp_path / "o"
    first = generate_pairs(PairsConfig(root=str(raf), out=str(out), output="webdataset", shard_size=4, limit=12, **KW))
    assert first.counts["pairs"] == 12
    again = generate_pairs(PairsConfig(root=str(raf), out=str(out), output="webdataset", shard_size=4, **KW))
    assert again.resumed_samples == 12 and again.new_samples == 16
    assert shard_bytes(out) == shard_bytes(wds)


def test_a_run_killed_while_writing_shards_keeps_the_finished_ones(raf, wds, tmp_path, monkeypatch):
    out = tmp_path / "o"
    add = ShardWriter.add
    calls = {"n": 0}

    def dying_add(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 9:
            raise KeyboardInterrupt  # the driver stops while the shards are written
        return add(self, *args, **kwargs)

    monkeypatch.setattr(ShardWriter, "add", dying_add)
    with pytest.raises(KeyboardInterrupt):
        generate_pairs(PairsConfig(root=str(raf), out=str(out), output="webdataset", shard_size=4, **KW))
    monkeypatch.setattr(ShardWriter, "add", add)
    done = {p.name: p.stat().st_mtime_ns for p in out.glob("*.tar")}
    assert sorted(done) == ["train-000000.tar", "train-000001.tar"] and not (out / "index.json").exists()
    again = generate_pairs(PairsConfig(root=str(raf), out=str(out), output="webdataset", shard_size=4, **KW))
    assert again.new_samples == 0 and again.resumed_samples == 28  # nothing generated twice
    assert {n: (out / n).stat().st_mtime_ns for n in done} == done  # finished shards untouched
    assert shard_bytes(out) == shard_bytes(wds)


@pytest.mark.usefixtures("one_thread")
def test_readers_and_fer_pi_train_take_the_generated_shards(wds, tmp_path, monkeypatch):
    import webdataset

    urls = sorted(str(p) for p in wds.glob("train-*.tar"))
    samples = list(webdataset.WebDataset(urls, shardshuffle=False).decode("rgb8"))
    assert len(samples) == 18 and samples[0]["occluded.png"].shape == (48, 48, 3)
    assert {s["json"]["split"] for s in samples} == {"train"}

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import datasets

    files = {s: sorted(str(p) for p in wds.glob(f"{s}-*.tar")) for s in ("train", "test")}
    ds = datasets.load_dataset("webdataset", data_files=files, cache_dir=str(tmp_path / "hf"))
    assert ds["train"].num_rows == 18 and ds["test"].num_rows == 7
    row = ds["test"][0]
    assert np.asarray(row["mask.png"]).shape[:2] == (48, 48) and len(row["json"]["landmarks"]) == 68

    from fer_pi.cli import cli as fer_cli

    run = tmp_path / "run"
    res = CliRunner().invoke(fer_cli, ["train", "--data", str(wds), "--out", str(run), "--preset", "full",
                                       "--epochs", "1", "--pretrain-epochs", "1", "--arch", "tiny", "--weights", "none", "--image-size", "32",
                                       "--batch-size", "4", "--num-workers", "0", "--quiet"],
                             catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert (run / "best.pt").is_file() and (run / "pretrain" / "student.pt").is_file()
    rows = (run / "summary.csv").read_text().splitlines()
    assert len(rows) == 2 and rows[1].split(",")[0] != ""  # one epoch, streamed from the shards


def test_cli_format_webdataset(raf, tmp_path):
    from occlusion_synth.cli import cli

    base = ["generate", "--src", "rafdb", "--root", str(raf), "--landmarks", "aligned", "--categories", "block",
            "--size", "48", "--limit", "6", "--no-progress"]
    res = CliRunner().invoke(cli, base + ["--out", str(tmp_path / "o"), "--format", "webdataset", "--shard-size", "2"])
    assert res.exit_code == 0, res.output
    assert "tar shards, index.json" in res.output
    assert sum(e["count"] for e in read_index(tmp_path / "o")["splits"].values()) == 6
    res = CliRunner().invoke(cli, base + ["--out", str(tmp_path / "p"), "--format", "webdataset", "--shard", "0/2"])
    assert res.exit_code == 2 and "--shard" in res.output and "merge" in res.output
    # the folder output of the same options cannot resume into it
    res = CliRunner().invoke(cli, base + ["--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "different output" in res.output and res.output.count("\n") == 1
    res = CliRunner().invoke(cli, base + ["--out", str(tmp_path / "o"), "--overwrite"])
    assert res.exit_code == 0, res.output
    assert not list((tmp_path / "o").glob("*.tar")) and not (tmp_path / "o" / "index.json").exists()


def test_held_out_templates_apply_to_webdataset_outputs_too(raf, tmp_path):
    """--holdout-templates with --format webdataset: the same pairs as the folder output (the
    shard writer once wrapped the occluder and silently lost the seen/unseen template sets)."""
    kw = {**KW, "holdout_templates": 0.4}
    folder, wds_out = tmp_path / "folder", tmp_path / "wds"
    generate_pairs(PairsConfig(root=str(raf), out=str(folder), **kw))
    generate_pairs(PairsConfig(root=str(raf), out=str(wds_out), output="webdataset", shard_size=8, **kw))
    shards_to_folder(wds_out, tmp_path / "back")
    expected = {k: v for k, v in tree_bytes(folder).items() if k != "landmarks.jsonl"}
    assert tree_bytes(tmp_path / "back") == expected
    info = json.loads((folder / "dataset.json").read_text())
    assert any(t.get("set") == "unseen" for t in info["templates"])
