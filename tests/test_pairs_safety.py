"""Safety of paired generation: hostile files, parse errors, OS errors, merge refusals, duplicates.

Real files in real layouts (FIFOs, device links, sparse files, bombs), the real readers, dlib
and the template library; nothing mocked.
"""
from __future__ import annotations

import csv
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
from occlusion_synth.errors import OcclusionSynthError
from occlusion_synth.io import write_image
from occlusion_synth.pairs import PairsConfig, generate_pairs, merge_pairs, read_csv

from test_generate import face_crops, write_rafdb  # noqa: E402  (tests/ is on sys.path under pytest)
from test_generate_robustness import png_header_only  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def crops(photos):
    return face_crops(photos, 64)


def _skipped(out: Path) -> dict[str, str]:
    return {Path(r["source"]).name: r["reason"] for r in read_csv(out / "skipped.csv")}


def test_hostile_files_in_a_folder_source(crops, tmp_path):
    root = tmp_path / "src" / "happy"
    root.mkdir(parents=True)
    write_image(root / "good.jpg", crops[0])
    os.mkfifo(root / "fifo.jpg")  # would block a plain open() forever
    os.symlink("/dev/zero", root / "zero.jpg")  # would be read without end
    (root / "folder.jpg").mkdir()  # a directory named like an image
    write_image(root / "folder.jpg" / "inner.jpg", crops[1])
    with open(root / "sparse.jpg", "wb") as fh:  # 3 GB on paper, nothing on disk
        fh.truncate(3 * 1024 ** 3)
    png_header_only(root / "bomb.png", 50000, 50000)
    write_image(root / "black.png", np.zeros((64, 64, 3), np.uint8))
    (root / ".hidden.jpg").write_bytes(b"x")
    (root / "notes.txt").write_text("hi")
    out = tmp_path / "out"
    summary = generate_pairs(PairsConfig(src="folder", root=str(tmp_path / "src"), out=str(out),
                                         landmarks="aligned", categories=("block",), max_file_size=10_000_000))
    assert summary.new_pairs == 1
    reasons = _skipped(out)
    assert reasons["fifo.jpg"] == "not a regular file (a FIFO)"
    assert reasons["zero.jpg"] == "not a regular file (a device)"
    assert reasons["folder.jpg"] == "not a regular file (a directory)"
    assert reasons["sparse.jpg"].startswith("file too large: 3221225472 bytes")
    assert reasons["bomb.png"] == "image too large: 50000x50000 = 2500000000 pixels (limit max_pixels = 40000000)"
    assert reasons["black.png"].startswith("no face: uniform image")  # aligned would "find" a face
    assert reasons[".hidden.jpg"] == "hidden file (not read)"
    assert reasons["notes.txt"].startswith("not an image file")
    assert all(r.count("too large") <= 1 for r in reasons.values())


def test_max_file_size_option(crops, tmp_path):
    root = tmp_path / "src" / "happy"
    root.mkdir(parents=True)
    write_image(root / "a.png", crops[0])
    size = (root / "a.png").stat().st_size
    res = CliRunner().invoke(cli, ["generate", "--src", "folder", "--root", str(tmp_path / "src"), "--out",
                                   str(tmp_path / "o"), "--landmarks", "aligned", "--categories", "block",
                                   "--no-progress", "--max-file-size", f"{size - 1}"])
    assert res.exit_code == 2 and "file too large" in res.output and "Traceback" not in res.output
    res = CliRunner().invoke(cli, ["generate", "--src", "folder", "--root", str(tmp_path / "src"), "--out",
                                   str(tmp_path / "o1"), "--landmarks", "aligned", "--categories", "block",
                                   "--no-progress", "--max-file-size", "1MB"])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(cli, ["generate", "--src", "folder", "--root", str(tmp_path / "src"), "--out",
                                   str(tmp_path / "o2"), "--max-file-size", "lots"])
    assert res.exit_code == 2 and "--max-file-size" in res.output


def test_affectnet_non_finite_values_and_huge_csv_fields(crops, tmp_path):
    root = tmp_path / "affectnet"
    images = root / "Manually_Annotated_Images"
    for i in range(4):
        write_image(images / "1" / f"{i}.jpg", crops[i])
    header = ["subDirectory_filePath", "face_x", "face_y", "face_width", "face_height", "facial_landmarks",
              "expression", "valence", "arousal"]
    rows = [["1/0.jpg", 0, 0, 64, 64, "", "inf", 0, 0],
            ["1/1.jpg", 0, 0, 64, 64, "", "1e400", 0, 0],
            ["1/2.jpg", 0, 0, 64, 64, "x;" * 70000, 1, 0, 0],  # one field over csv's 128 KiB limit
            ["1/3.jpg", "nan", "inf", 64, 64, "", 1, "inf", 0]]
    with open(root / "training.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    out = tmp_path / "o"
    summary = generate_pairs(PairsConfig(src="affectnet", root=str(root), out=str(out), splits=("train",),
                                         landmarks="aligned", crop="none", categories=("block",)))
    assert summary.new_pairs == 1 and summary.internal_errors == 0
    reasons = sorted(r["reason"] for r in read_csv(out / "skipped.csv"))
    assert len(reasons) == 3
    assert sum("is not a number" in r for r in reasons) == 2
    assert sum("field larger than field limit" in r for r in reasons) == 1


def test_fer2013_row_over_the_field_limit_keeps_the_rest(crops, tmp_path):
    root = tmp_path / "fer"
    root.mkdir()
    gray = cv2.resize(cv2.cvtColor(crops[0], cv2.COLOR_RGB2GRAY), (48, 48), interpolation=cv2.INTER_AREA)
    with open(root / "fer2013.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["emotion", "pixels", "Usage"])
        w.writerow([3, "1 " * 100000, "Training"])
        w.writerow([3, " ".join(map(str, gray.ravel())), "Training"])
    out = tmp_path / "o"
    generate_pairs(PairsConfig(src="fer2013", root=str(root), out=str(out), landmarks="aligned",
                               categories=("block",)))
    assert [r["id"] for r in read_csv(out / "manifest.csv")] == ["fer0000001"]
    assert "field larger than field limit" in read_csv(out / "skipped.csv")[0]["reason"]


@pytest.mark.parametrize("args, message", [
    (["--seed", "-5"], "--seed"),
    (["--out", "/sys/occsynth_test_out"], "--out"),
    (["--val-fraction", "1.5"], "--val-fraction"),
    (["--landmarks", "cached"], "--landmark-cache"),
])
def test_option_and_os_errors_are_one_line(crops, tmp_path, args, message):
    root = write_rafdb(tmp_path / "raf", crops, 2)
    base = {"--src": "rafdb", "--root": str(root), "--out": str(tmp_path / "o"), "--landmarks": "aligned"}
    for flag, value in zip(args[::2], args[1::2]):
        base[flag] = value
    res = CliRunner().invoke(cli, ["generate", "--no-progress"] + [x for kv in base.items() for x in kv])
    assert res.exit_code == 2, res.output
    assert message in res.output and "Traceback" not in res.output
    assert len([line for line in res.output.splitlines() if line.startswith("Error")]) == 1


def test_output_under_a_file_is_a_one_line_error(crops, tmp_path):
    root = write_rafdb(tmp_path / "raf", crops, 2)
    (tmp_path / "afile").write_text("x")
    with pytest.raises(OcclusionSynthError, match="out: .*afile/o.*not a folder|out: cannot write"):
        generate_pairs(PairsConfig(src="rafdb", root=str(root), out=str(tmp_path / "afile" / "o"),
                                   landmarks="aligned", categories=("block",)))


def test_config_is_frozen_and_names_arguments(tmp_path):
    from dataclasses import FrozenInstanceError

    from occlusion_synth.pairs import ConfigError

    cfg = PairsConfig(src="rafdb", root=str(tmp_path), out=str(tmp_path / "o"))
    with pytest.raises(FrozenInstanceError):
        cfg.seed = 3
    with pytest.raises(ConfigError, match="^seed: ") as info:
        PairsConfig(src="rafdb", root=str(tmp_path), out=str(tmp_path / "o"), seed=-5)
    assert info.value.argument == "seed"
    with pytest.warns(DeprecationWarning, match="coverage_range"):
        old = PairsConfig(src="rafdb", root=str(tmp_path), out=str(tmp_path / "o"), coverage=(0.1, 0.4))
    assert old.coverage_range == (0.1, 0.4)


def _tree(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*")
            if p.is_file() and ".occsynth" not in p.parts and p.name != "dataset.json"}


def test_merge_refuses_foreign_out_and_repeated_shards(crops, tmp_path):
    root = write_rafdb(tmp_path / "raf", crops, 6)
    shards = []
    for i in range(2):
        shards.append(tmp_path / f"s{i}")
        generate_pairs(PairsConfig(src="rafdb", root=str(root), out=str(shards[-1]), landmarks="aligned",
                                   categories=("block",), shard=(i, 2)))
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("do not delete")
    with pytest.raises(OcclusionSynthError, match="not an earlier occsynth output"):
        merge_pairs(shards, foreign)
    assert (foreign / "thesis.tex").read_text() == "do not delete"
    with pytest.raises(OcclusionSynthError, match="given twice"):
        merge_pairs([shards[0], shards[0]], tmp_path / "m")
    import shutil

    shutil.copytree(shards[0], tmp_path / "copy0")
    with pytest.raises(OcclusionSynthError, match="same shard 0/2"):
        merge_pairs([shards[0], tmp_path / "copy0"], tmp_path / "m")
    merge_pairs(shards, tmp_path / "m")
    first = _tree(tmp_path / "m")
    merge_pairs(shards, tmp_path / "m")  # its own earlier output: replaced
    assert _tree(tmp_path / "m") == first
    res = CliRunner().invoke(cli, ["merge", str(shards[0]), str(shards[0]), "--out", str(tmp_path / "m2")])
    assert res.exit_code == 2 and "given twice" in res.output and "Traceback" not in res.output


def test_duplicate_ids_first_wins_and_fresh_equals_resumed(crops, tmp_path):
    root = write_rafdb(tmp_path / "raf", crops, 4)
    labels = root / "EmoLabel" / "list_patition_label.txt"
    # train_00002 again with a bad label, then again with another label: both are duplicates
    labels.write_text(labels.read_text() + "train_00002.jpg 9\ntrain_00002.jpg 3\n")
    kw = dict(src="rafdb", root=str(root), landmarks="aligned", categories=("block",))
    fresh = tmp_path / "fresh"
    generate_pairs(PairsConfig(out=str(fresh), **kw))
    rows = read_csv(fresh / "manifest.csv")
    assert [r["id"] for r in rows].count("train_00002") == 1
    assert next(r for r in rows if r["id"] == "train_00002")["label_name"] == "fear"  # RAF 2 -> fear
    dups = [r for r in read_csv(fresh / "skipped.csv") if r["reason"].startswith("duplicate id")]
    assert [r["id"] for r in dups] == ["train_00002", "train_00002"]
    resumed = tmp_path / "resumed"
    generate_pairs(PairsConfig(out=str(resumed), limit=1, **kw))
    generate_pairs(PairsConfig(out=str(resumed), limit=2, **kw))
    generate_pairs(PairsConfig(out=str(resumed), **kw))
    generate_pairs(PairsConfig(out=str(resumed), **kw))
    assert _tree(resumed) == _tree(fresh)


def _children(pid: int) -> list[int]:
    kids = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        kids += [int(k) for k in (task / "children").read_text().split()]
    return kids


def test_workers_exit_when_the_main_process_dies(crops, tmp_path):
    root = write_rafdb(tmp_path / "raf", crops, 400)
    out = tmp_path / "out"
    cmd = [sys.executable, "-c", "from occlusion_synth.cli import main; main()", "generate", "--src", "rafdb",
           "--root", str(root), "--out", str(out), "--landmarks", "aligned", "--workers", "2",
           "--no-progress", "--categories", "mask,block"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    journal = out / ".occsynth" / "journal.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if journal.is_file() and journal.read_bytes().count(b"\n") >= 2:
            break
        time.sleep(0.01)
    assert proc.poll() is None, "the run finished before the kill; nothing was tested"
    workers = [k for k in _children(proc.pid)]
    assert workers, "no worker processes found"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 10
    alive = workers
    while alive and time.time() < deadline:
        alive = [w for w in alive if Path(f"/proc/{w}").exists()
                 and "Z" not in Path(f"/proc/{w}/stat").read_text().split()[2:3]]
        time.sleep(0.1)
    assert not alive, f"worker processes {alive} outlived the main process"


def test_row_store_sorts_like_python_and_last_record_wins(tmp_path):
    from occlusion_synth.pairs.journal import collect
    from occlusion_synth.pairs.store import RowStore

    ids = ["b", "a", "é", "a_k1", "Z", "ä", "a\u4e2d"]
    recs = [{"id": i, "pairs": [], "skipped": [{"id": i, "source": "s", "reason": f"r {i}"}]} for i in ids]
    recs.append({"id": "b", "pairs": [], "skipped": [{"id": "b", "source": "s", "reason": "replaced"}]})
    with RowStore(tmp_path / "rows.sqlite") as store:
        collect(recs, store)
        lines = list(store.lines("skip"))
        assert [line.split(",")[0] for line in lines] == sorted(ids)
        assert "replaced" in lines[sorted(ids).index("b")] and store.total("skip") == len(ids)
    assert not (tmp_path / "rows.sqlite").exists()  # scratch files are removed


def test_decompression_bomb_template_is_a_one_line_error(crops, tmp_path):
    tpl = tmp_path / "tpl" / "mask"
    tpl.mkdir(parents=True)
    png_header_only(tpl / "big.png", 60000, 60000)
    root = write_rafdb(tmp_path / "raf", crops, 2)
    for argv in (["generate", "--src", "rafdb", "--root", str(root), "--out", str(tmp_path / "o"),
                  "--landmarks", "aligned", "--no-progress"],
                 ["preview", "--src", str(root / "Image"), "-o", str(tmp_path / "p.png")]):
        res = CliRunner().invoke(cli, argv + ["--templates", str(tmp_path / "tpl")])
        assert res.exit_code == 2, res.output
        assert "too large" in res.output and "Traceback" not in res.output


def test_preview_and_landmarks_report_bad_files_and_go_on(crops, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    write_image(src / "good.png", cv2.resize(crops[0], (160, 160)))
    (src / "broken.jpg").write_bytes(b"nope")
    os.mkfifo(src / "fifo.png")
    res = CliRunner().invoke(cli, ["preview", "--src", str(src), "-o", str(tmp_path / "p.png"), "-n", "2",
                                   "--backend", "aligned", "--categories", "block", "--size", "64"])
    assert res.exit_code == 0, res.output
    assert "2 image(s) skipped" in res.output and (tmp_path / "p.png").is_file()
    assert "broken.jpg" in res.output and "not a regular file (a FIFO)" in res.output
    res = CliRunner().invoke(cli, ["landmarks", str(src), "--backend", "aligned"])
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert "good.png: face 0" in res.output and "2 of 3 image(s) failed" in res.output


def test_a_script_without_main_guard_fails_with_a_message_not_a_hang(crops, tmp_path):
    """Spawned workers re-run the calling script: without `if __name__ == "__main__":` the run
    must stop with a message naming the fix (Python blocked forever on a large start-up pipe)."""
    root = write_rafdb(tmp_path / "raf", crops, 6)
    script = tmp_path / "noguard.py"
    script.write_text(
        "from occlusion_synth.pairs import PairsConfig, generate_pairs\n"
        f"generate_pairs(PairsConfig(src='rafdb', root={str(root)!r}, out={str(tmp_path / 'o')!r}, "
        "landmarks='aligned', workers=2, progress=False))\n")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=240, env=env)
    assert proc.returncode != 0
    assert 'if __name__ == "__main__":' in proc.stderr
