"""``occsynth generate`` / ``merge`` end to end with the real Occlude, dlib and template library.

The source is a tiny RAF-DB tree (the real layout) of aligned face crops cut from the real demo
photos; the properties checked are the output contract, determinism across workers, shards and
a ``kill -9``, and resume.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from occlusion_synth.cli import cli
from occlusion_synth.io import read_image, write_image
from occlusion_synth.pairs import MANIFEST_COLUMNS, Journal, PairsConfig, pair_seed, read_csv, shard_of
from occlusion_synth.pairs import generate_pairs as generate
from occlusion_synth.pairs import merge_pairs as merge

REPO = Path(__file__).resolve().parents[1]
FACE_PHOTOS = ("astronaut.png", "obama.jpg", "obama2.jpg", "obama3.jpg", "biden.jpg")


def face_crops(photos: dict, size: int) -> list[np.ndarray]:
    """Aligned-style square crops of the real photos' faces (dlib landmarks), ``size`` px."""
    from occlusion_synth.functional import face_crop
    from occlusion_synth.landmarks import detect

    crops = []
    for name in FACE_PHOTOS:
        img = read_image(photos[name])
        s = 320 / max(img.shape[:2])  # detection on a small copy is much faster
        small = cv2.resize(img, (round(img.shape[1] * s), round(img.shape[0] * s)), interpolation=cv2.INTER_AREA)
        crops.append(face_crop(small, detect(small, "dlib")[0].landmarks, 0.2, size).image)
    return crops


def write_rafdb(root: Path, crops: list[np.ndarray], n: int) -> Path:
    """RAF-DB basic layout: Image/aligned/{split}_NNNNN_aligned.jpg + EmoLabel/list_patition_label.txt."""
    lines = []
    for i in range(n):
        split = "test" if i % 4 == 0 else "train"
        crop = crops[i % len(crops)]
        if (i // len(crops)) % 2:
            crop = crop[:, ::-1]
        stem = f"{split}_{i + 1:05d}"
        write_image(root / "Image" / "aligned" / f"{stem}_aligned.jpg", np.ascontiguousarray(crop))
        lines.append(f"{stem}.jpg {i % 7 + 1}")
    (root / "EmoLabel").mkdir(parents=True, exist_ok=True)
    (root / "EmoLabel" / "list_patition_label.txt").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture(scope="module")
def templates(tmp_path_factory):
    """A private copy of the shipped library, so the byte comparisons cannot see a concurrent rebuild."""
    import shutil

    from occlusion_synth.templates.library import assets_dir

    dst = tmp_path_factory.mktemp("tpl") / "assets"
    shutil.copytree(assets_dir(), dst)
    return str(dst)


@pytest.fixture(scope="module")
def crops(photos):
    return face_crops(photos, 64)


@pytest.fixture(scope="module")
def raf(tmp_path_factory, crops):
    return write_rafdb(tmp_path_factory.mktemp("raf"), crops, 12)


TEMPLATES: list[str] = []


@pytest.fixture(autouse=True, scope="module")
def _use_private_templates(templates):
    TEMPLATES[:] = [templates]


def config(root, out, **kw) -> PairsConfig:
    kw.setdefault("landmarks", "aligned")
    kw.setdefault("templates", TEMPLATES[0])
    return PairsConfig(src="rafdb", root=str(root), out=str(out), **kw)


def tree_bytes(out: Path) -> dict[str, bytes]:
    """Every public output file (images, manifest.csv, skipped.csv) -> bytes."""
    files = {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*")
             if p.is_file() and STATE not in p.parts and p.name != "dataset.json"}
    assert not [f for f in files if f.endswith(".tmp")], "temporary files left behind"
    return files


STATE = ".occsynth"


@pytest.fixture(scope="module")
def reference(raf, tmp_path_factory):
    """One uninterrupted single-process run, the reference for the determinism tests."""
    out = tmp_path_factory.mktemp("ref")
    summary = generate(config(raf, out, workers=1))
    return out, summary


def test_output_contract(raf, reference):
    out, summary = reference
    rows = read_csv(out / "manifest.csv")
    assert list(rows[0]) == list(MANIFEST_COLUMNS)
    assert summary.new_pairs == len(rows) == 12
    assert [r["id"] for r in rows] == sorted((r["id"] for r in rows), key=lambda i: (i.startswith("test"), i))
    for r in rows:
        clean, occluded, mask = (read_image(out / r[k]) for k in ("clean", "occluded", "mask"))
        # no crop, no resize: the clean file is the source file's bytes (JPEG kept as JPEG)
        assert r["clean"] == f"clean/{r['split']}/{r['label_name']}/{r['id']}.jpg"
        assert r["occluded"] == f"occluded/{r['split']}/{r['label_name']}/{r['id']}.png"
        assert clean.shape == occluded.shape == mask.shape == (64, 64, 3)
        src = raf / "Image" / "aligned" / f"{r['id']}_aligned.jpg"
        assert (out / r["clean"]).read_bytes() == src.read_bytes()
        assert r["faces_occluded"] == "1"
        m = mask[..., 0]
        assert set(np.unique(m)) <= {0, 255} and m.any()
        changed = (clean != occluded).any(axis=2)
        near = cv2.dilate(m, np.ones((5, 5), np.uint8)) > 0
        # soft, faint template parts (alpha under the mask threshold) may change a few pixels more
        assert changed.any() and (changed & ~near).sum() <= 0.1 * changed.sum()
        assert abs(float(r["occluded_fraction"]) - 0.5) <= 0.5 and r["landmark_source"] == "aligned"
        assert int(r["seed"]) == pair_seed(0, r["id"], 0)
        assert r["category"] in ("food", "hand", "drink", "mask", "block") and r["template"]
    info = json.loads((out / "dataset.json").read_text())
    assert info["counts"]["pairs"] == 12 and info["seed"] == 0 and info["source"] == "rafdb"
    assert sum(info["counts"]["per_split"].values()) == 12
    assert info["counts"]["per_split"] == {"test": 3, "train": 9}
    assert info["label_map"]["source_to_canonical"]["7"] == 0
    assert info["templates"] and all(t["licence"] for t in info["templates"])
    assert (out / "skipped.csv").read_text() == "id,source,reason\n"


def test_workers_2_gives_identical_bytes(raf, reference, tmp_path):
    out, _ = reference
    generate(config(raf, tmp_path / "w2", workers=2, chunksize=2))
    assert tree_bytes(tmp_path / "w2") == tree_bytes(out)


def test_shards_merged_equal_unsharded(raf, reference, tmp_path):
    out, _ = reference
    shards = []
    for i in range(3):
        shards.append(tmp_path / f"s{i}")
        generate(config(raf, shards[-1], shard=(i, 3)))
    assert {len(read_csv(s / "manifest.csv")) for s in shards} != {12}
    summary = merge(shards, tmp_path / "merged")
    assert summary.counts["pairs"] == 12
    assert tree_bytes(tmp_path / "merged") == tree_bytes(out)
    a = json.loads((out / "dataset.json").read_text())
    b = json.loads((tmp_path / "merged" / "dataset.json").read_text())
    assert a["counts"] == b["counts"] and a["templates"] == b["templates"] and a["label_map"] == b["label_map"]
    assert {k: v for k, v in a["options"].items() if k not in ("shard", "out", "workers")} == \
           {k: v for k, v in b["options"].items() if k not in ("shard", "out", "workers")}
    # shard membership depends on the id only
    assert all(shard_of(r["id"], 3) == i for i, s in enumerate(shards) for r in read_csv(s / "manifest.csv"))
    # shards made with another seed are refused
    from occlusion_synth.errors import OcclusionSynthError

    generate(config(raf, tmp_path / "other", shard=(1, 3), seed=1))
    with pytest.raises(OcclusionSynthError, match="different seed"):
        merge([shards[0], tmp_path / "other"], tmp_path / "bad")


def test_kill_9_then_resume_is_identical(crops, tmp_path):
    root = write_rafdb(tmp_path / "raf", crops, 60)
    ref = tmp_path / "ref"
    generate(config(root, ref, per_image=2))
    out = tmp_path / "out"
    cmd = [sys.executable, "-c", "from occlusion_synth.cli import main; main()", "generate",
           "--src", "rafdb", "--root", str(root), "--out", str(out), "--landmarks", "aligned", "--per-image", "2", "--no-progress",
           "--templates", TEMPLATES[0]]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    journal = out / STATE / "journal.jsonl"
    deadline = time.time() + 60
    while time.time() < deadline and proc.poll() is None:
        if journal.is_file() and journal.read_bytes().count(b"\n") >= 3:
            break
        time.sleep(0.005)
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "manifest.csv").exists(), "the run finished before the kill; nothing was tested"
    from occlusion_synth.pairs.store import IdState

    with IdState(tmp_path / "state.sqlite") as state:
        Journal(out).completed(state)
        done_before = state.count("done")
    assert 3 <= done_before < 60
    result = CliRunner().invoke(cli, cmd[3:])
    assert result.exit_code == 0, result.output
    assert f"{done_before} images already done" in result.output
    assert tree_bytes(out) == tree_bytes(ref)
    rows = read_csv(out / "manifest.csv")
    assert len(rows) == 120 and len({r["id"] for r in rows}) == 120
    assert {r["id"][-3:] for r in rows} == {"_k0", "_k1"}
    assert all(r["clean"].endswith(r["id"][:-3] + ".jpg") for r in rows)  # variants share the clean file


def test_resume_skips_done_and_guards_options(raf, reference, tmp_path):
    out = tmp_path / "o"
    first = generate(config(raf, out, limit=5))
    assert first.new_pairs == 5
    again = generate(config(raf, out))
    assert again.resumed_samples == 5 and again.new_pairs == 7
    assert tree_bytes(out) == tree_bytes(reference[0])
    # a missing file makes its pair incomplete: it is redone, the manifest keeps one row
    victim = next((out / "occluded").rglob("*.png"))
    victim.unlink()
    third = generate(config(raf, out))
    assert third.new_pairs == 1 and victim.is_file()
    assert len(read_csv(out / "manifest.csv")) == 12
    from occlusion_synth.errors import OcclusionSynthError

    with pytest.raises(OcclusionSynthError, match="seed"):
        generate(config(raf, out, seed=1))
    generate(config(raf, out, seed=1, overwrite=True))
    assert tree_bytes(out) != tree_bytes(reference[0])


def test_journal_drops_a_cut_line(tmp_path):
    j = Journal(tmp_path)
    with j:
        j.append({"id": "a", "pairs": [], "skipped": []})
    with open(j.path, "ab") as fh:
        fh.write(b'{"id": "b", "pai')  # what a kill -9 mid-write leaves
    assert [r["id"] for r in j.records()] == ["a"]
    with j:
        j.append({"id": "c", "pairs": [], "skipped": []})
    assert [r["id"] for r in j.records()] == ["a", "c"]


def test_cli_generate_options_and_merge(raf, tmp_path):
    runner = CliRunner()
    out = tmp_path / "cli"
    res = runner.invoke(cli, ["generate", "--src", "rafdb", "--root", str(raf), "--out", str(out),
                              "--templates", TEMPLATES[0],
                              "--landmarks", "aligned", "--categories", "mask,block", "--size", "48",
                              "--format", "jpg", "--splits", "test", "--coverage", "0.05-0.9",
                              "--landmark-option", "refine=0", "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "generated 3 pairs" in res.output
    rows = read_csv(out / "manifest.csv")
    assert {r["split"] for r in rows} == {"test"} and {r["category"] for r in rows} <= {"mask", "block"}
    assert all(r["clean"].endswith(".jpg") and r["occluded"].endswith(".jpg") and r["mask"].endswith(".png")
               for r in rows)
    assert read_image(out / rows[0]["clean"]).shape == (48, 48, 3)
    info = json.loads((out / "dataset.json").read_text())
    assert info["options"]["categories"] == ["mask", "block"] and info["options"]["size"] == 48
    assert info["options"]["landmark_options"] == {"refine": 0}
    res = runner.invoke(cli, ["merge", str(out), "--out", str(tmp_path / "m")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "m" / "manifest.csv").read_bytes() == (out / "manifest.csv").read_bytes()


@pytest.mark.parametrize("args, message", [
    (["--root", "/no/such/dir"], "--root"),
    (["--coverage", "0.9-0.1"], "--coverage"),
    (["--shard", "3/2"], "--shard"),
    (["--categories", "food,cake"], "--categories"),
    (["--variant", "original", "--src", "fer2013"], "variant"),
    (["--label-map", "0=happy"], "label-map"),
    (["--landmark-option", "bogus=1"], "landmark-option"),
])
def test_cli_user_errors_exit_2_without_traceback(raf, tmp_path, args, message):
    base = {"--src": "rafdb", "--root": str(raf), "--out": str(tmp_path / "o")}
    for flag, value in zip(args[::2], args[1::2]):
        base[flag] = value
    argv = ["generate", "--no-progress"] + [x for kv in base.items() for x in kv]
    res = CliRunner().invoke(cli, argv)
    assert res.exit_code == 2, res.output
    assert message in res.output and "Traceback" not in res.output


class DyingOccluder:
    """Kills the worker process that uses it (what an out-of-memory kill looks like to the pool)."""

    def get_params(self, image, landmarks, rng):
        os._exit(3)


def dying_factory(cfg):
    return DyingOccluder()


def test_dead_worker_is_an_error_not_a_hang(raf, tmp_path):
    from occlusion_synth.errors import OcclusionSynthError

    start = time.time()
    with pytest.raises(OcclusionSynthError, match="worker process died"):
        generate(config(raf, tmp_path / "o", workers=2), occluder_factory=dying_factory)
    assert time.time() - start < 60


def test_workers_stream_with_bounded_in_flight_work(crops, tmp_path):
    """The pool never holds more than 2 chunks per worker: memory does not grow with the source."""
    from occlusion_synth.landmarks.schemes import canonical_landmarks
    from occlusion_synth.pairs import LocalExecutor, Task, WorkerSpec

    cfg = PairsConfig(src="rafdb", root=str(tmp_path), out=str(tmp_path / "o"), workers=2, chunksize=3,
                      categories=("block",), landmarks="provided")
    lm = canonical_landmarks(64)
    state = {"consumed": 0, "yielded": 0, "max_in_flight": 0}

    def tasks():
        for i in range(150):
            state["consumed"] += 1
            state["max_in_flight"] = max(state["max_in_flight"], state["consumed"] - state["yielded"])
            yield Task(id=f"s{i:04d}", split="train", label=i % 7, source=f"mem:{i}", load=crops[i % 5],
                       seeds=(i,), landmarks=lm)

    ids = []
    for res in LocalExecutor(2, 3).map(WorkerSpec(cfg), tasks()):
        state["yielded"] += 1
        ids.append(res.id)
    assert sorted(ids) == [f"s{i:04d}" for i in range(150)]
    # 2 workers x 2 chunks x 3 tasks in the pool, plus the chunk being filled
    assert state["max_in_flight"] <= 2 * 2 * 3 + 3
