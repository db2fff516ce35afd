"""``fer-pi evaluate`` / ``predict`` / ``bench`` end to end on a tiny net and tiny data."""
from __future__ import annotations

import csv
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))
from fer_fixtures import make_tiny_manifest  # noqa: E402

from fer_pi.cli import cli  # noqa: E402

CATEGORIES = ("food", "hand", "mask")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny manifest (categories rewritten to three kinds) and a tiny random checkpoint with decoder."""
    from fer_pi.checkpoint import save_checkpoint
    from fer_pi.config import TrainConfig
    from fer_pi.models import Decoder, build_backbone

    root = tmp_path_factory.mktemp("fer_eval")
    manifest = make_tiny_manifest(root / "data", n_per_class=2, size=32)
    with open(manifest, newline="") as fh:
        rows = list(csv.DictReader(fh))
    for i, r in enumerate(rows):
        r["category"] = CATEGORIES[i % 3]
    with open(manifest, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    torch.manual_seed(0)
    student, teacher = build_backbone("tiny", None), build_backbone("tiny", None)
    decoder = Decoder(student.feature_channels, 32)
    cfg = TrainConfig.from_preset("full", arch="tiny", image_size=32, weights="none", data=str(manifest))
    ckpt = root / "run" / "last.pt"
    save_checkpoint(ckpt, {"config": cfg.to_dict(), "phase": "finetune", "epoch": 1,
                           "student": student.state_dict(), "teacher": teacher.state_dict(),
                           "decoder": decoder.state_dict()})
    no_dec = root / "run2" / "student.pt"
    save_checkpoint(no_dec, {"config": cfg.to_dict(), "phase": "pretrain", "epoch": 1,
                             "student": student.state_dict()})
    return {"root": root, "manifest": manifest, "ckpt": ckpt, "no_dec": no_dec, "rows": rows}


def _reference_predictions(ckpt, manifest, key):
    """Predictions computed independently of fer_pi.evaluation: one image at a time."""
    from fer_pi.data import PairedDataset
    from fer_pi.models import load_for_inference

    model, _ = load_for_inference(ckpt)
    ds = PairedDataset(manifest, "test", 32)
    preds, labels, cats = [], [], []
    with torch.no_grad():
        for i in range(len(ds)):
            item = ds[i]
            preds.append(int(model(item[key][None])[0].argmax()))
            labels.append(int(item["label"]))
            cats.append(item["category"])
    return np.array(preds), np.array(labels), cats


def test_evaluate_end_to_end(tiny):
    out = tiny["root"] / "eval"
    res = CliRunner().invoke(cli, ["evaluate", str(tiny["ckpt"]), "--data", str(tiny["manifest"]),
                                   "--by", "category", "--batch-size", "5", "--out", str(out)])
    assert res.exit_code == 0, res.output
    data = json.loads((out / "evaluation.json").read_text())
    preds, labels, cats = _reference_predictions(tiny["ckpt"], tiny["manifest"], "occluded")
    assert data["n"] == 14 == len(labels)
    assert data["accuracy"] == pytest.approx(float((preds == labels).mean()))
    cm = np.array(data["confusion"])
    assert cm.shape == (7, 7) and cm.sum() == 14
    for t, p in zip(labels, preds):
        cm[t, p] -= 1
    assert not cm.any()  # the confusion matrix is exactly the reference predictions
    assert set(data["per_category"]) == set(CATEGORIES)
    for c in CATEGORIES:
        sel = np.array([x == c for x in cats])
        assert data["per_category"][c]["n"] == sel.sum()
        assert data["per_category"][c]["accuracy"] == pytest.approx(float((preds[sel] == labels[sel]).mean()))
    assert sum(v["n"] for v in data["per_coverage_bin"].values()) == 14
    cpreds, _, _ = _reference_predictions(tiny["ckpt"], tiny["manifest"], "clean")
    assert data["clean"]["accuracy"] == pytest.approx(float((cpreds == labels).mean()))
    assert data["rec_mse"] > 0 and data["method"] == "full" and data["arch"] == "tiny"
    for name in ("confusion.png", "reconstructions.png", "evaluation.md"):
        assert (out / name).stat().st_size > 500
    assert "per occluder category" in res.output and "food" in res.output
    assert "per coverage bin" in res.output


def test_evaluate_without_decoder_and_bad_split(tiny):
    res = CliRunner().invoke(cli, ["evaluate", str(tiny["no_dec"]), "--data", str(tiny["manifest"])])
    assert res.exit_code == 0, res.output
    out = tiny["no_dec"].parent / "eval"
    assert (out / "confusion.png").is_file() and not (out / "reconstructions.png").exists()
    assert "rec_mse" not in json.loads((out / "evaluation.json").read_text())
    res = CliRunner().invoke(cli, ["evaluate", str(tiny["no_dec"]), "--data", str(tiny["manifest"]),
                                   "--split", "val"])
    assert res.exit_code == 2 and "val" in res.output and "train, test" in res.output


def _rows(output: str) -> list[list[str]]:
    """The tab-separated prediction rows of `fer-pi predict` (header dropped)."""
    lines = [line.split("\t") for line in output.splitlines() if line.count("\t") == 4]
    assert lines[0] == ["file", "face", "box", "label", "probability"]
    return lines[1:]


def test_predict_crops_every_face_like_generate(tiny, photos, tmp_path):
    """Two faces side by side: two rows; each face's input is the generate crop of that face."""
    from occlusion_synth.functional.crop import face_crop
    from occlusion_synth.io import read_image, write_image
    from occlusion_synth.landmarks import detect

    from fer_pi.data.transforms import resize, to_tensor
    from fer_pi.models import load_for_inference
    from fer_pi.predict import Predictor

    a, b = read_image(photos["obama.jpg"]), read_image(photos["biden.jpg"])
    h = min(a.shape[0], b.shape[0])
    pair = np.concatenate([a[:h], b[:h]], axis=1)
    img = tmp_path / "two.png"
    write_image(img, pair)
    res = CliRunner().invoke(cli, ["predict", str(tiny["ckpt"]), str(img), "--json"])
    assert res.exit_code == 0, res.output
    preds = json.loads(res.output)["predictions"]
    assert [p["face"] for p in preds] == [0, 1]
    centres = sorted((p["box"][0] + p["box"][2]) / 2 for p in preds)
    assert centres[0] < a.shape[1] < centres[1]  # one face in each half
    # the network input of each face is exactly generate's crop (same kernel, same margin), resized
    faces = detect(pair, all_faces=True)
    predictor = Predictor(tiny["ckpt"])
    model, _ = load_for_inference(tiny["ckpt"])
    for p, face in zip(preds, faces):
        framed = face_crop(pair, face.landmarks, margin=0.25, size=32)
        assert p["crop"] == list(framed.box.xyxy)
        with torch.no_grad():
            probs = torch.softmax(model(to_tensor(resize(framed.image, 32))[None])[0], 1)[0]
        assert p["probability"] == pytest.approx(float(probs.max()), abs=1e-5)
        assert sum(p["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    assert len(predictor.faces(pair, "two")) == 2
    # text mode: a header and one tab-separated row per face
    res = CliRunner().invoke(cli, ["predict", str(tiny["ckpt"]), str(img)])
    assert res.exit_code == 0, res.output
    rows = _rows(res.output)
    assert [r[:2] for r in rows] == [[str(img), "0"], [str(img), "1"]]
    assert all(len(r[2].split(",")) == 4 and 0 < float(r[4]) <= 1 for r in rows)


def test_predict_folder_whole_image_and_failures_exit_non_zero(tiny, photos, tmp_path):
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    import shutil

    shutil.copy(photos["obama.jpg"], folder / "sub" / "obama.jpg")
    (folder / "broken.jpg").write_bytes(b"not an image at all")
    (folder / "notes.txt").write_text("hello")
    blank = folder / "blank.png"
    from occlusion_synth.io import write_image

    write_image(blank, np.full((120, 120, 3), 200, np.uint8))
    res = CliRunner().invoke(cli, ["predict", str(tiny["ckpt"]), str(folder), str(tmp_path / "missing.jpg"),
                                   "--backend", "dlib"])
    assert res.exit_code == 1, res.output
    rows = _rows(res.output)
    assert [r[0] for r in rows] == [str(folder / "sub" / "obama.jpg")]
    errors = [line for line in res.output.splitlines() if line.startswith("error: ")]
    assert {e.split(": ")[1] for e in errors} == {str(folder / "broken.jpg"), str(blank),
                                                 str(tmp_path / "missing.jpg")}
    assert f"skipped: {folder / 'notes.txt'}: not an image" in res.output
    assert "Traceback" not in res.output
    # --crop none: the whole image, one row per readable file, no face box search
    res = CliRunner().invoke(cli, ["predict", str(tiny["ckpt"]), str(folder), "--crop", "none", "--json"])
    assert res.exit_code == 1
    data = json.loads(res.output[:res.output.rindex("}") + 1])
    got = {p["path"]: p for p in data["predictions"]}
    assert set(got) == {str(folder / "sub" / "obama.jpg"), str(blank)}
    assert got[str(blank)]["face"] is None and got[str(blank)]["box"] == [0, 0, 120, 120]
    assert [f["path"] for f in data["failures"]] == [str(folder / "broken.jpg")]


def test_predict_exits_2_when_nothing_readable(tiny, tmp_path):
    broken = tmp_path / "x.png"
    broken.write_bytes(b"\x89PNG broken")
    res = CliRunner().invoke(cli, ["predict", str(tiny["ckpt"]), str(broken), str(tmp_path / "missing.png")])
    assert res.exit_code == 2
    assert "x.png" in res.output and "missing.png" in res.output
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    res = CliRunner().invoke(cli, ["predict", str(tiny["ckpt"]), str(fifo)])
    assert res.exit_code == 2 and f"error: {fifo}: not a regular file" in res.output


def test_bench_cpu_tiny(tmp_path):
    out = tmp_path / "bench.json"
    threads_before = torch.get_num_threads()
    res = CliRunner().invoke(cli, ["bench", "--arch", "tiny", "--image-size", "32", "--batch-sizes", "2,4",
                                   "--steps", "2", "--warmup", "1", "--device", "cpu", "--threads", "1",
                                   "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert torch.get_num_threads() == threads_before  # the thread setting does not leak
    data = json.loads(out.read_text())
    assert data["device"] == "cpu" and data["threads"] == 1
    assert [r["batch_size"] for r in data["results"]] == [2, 4]
    for r in data["results"]:
        assert r["train_pairs_per_s"] > 0 and r["infer_images_per_s"] > 0
        assert r["train_steps"] == 2 and r["infer_steps"] == 2
    assert "train pairs/s" in res.output
    res = CliRunner().invoke(cli, ["bench", "--batch-sizes", "0,x"])
    assert res.exit_code == 2


def test_evaluate_against_a_baseline(tiny, tmp_path):
    """--baseline: side-by-side robustness tables and charts (baseline vs this model)."""
    base_out = tmp_path / "base"
    res = CliRunner().invoke(cli, ["evaluate", str(tiny["no_dec"]), "--data", str(tiny["manifest"]),
                                   "--out", str(base_out)])
    assert res.exit_code == 0, res.output
    out = tmp_path / "cmp"
    res = CliRunner().invoke(cli, ["evaluate", str(tiny["ckpt"]), "--data", str(tiny["manifest"]), "--by", "category",
                                   "--baseline", str(base_out / "evaluation.json"), "--out", str(out)])
    assert res.exit_code == 0, res.output
    base = json.loads((base_out / "evaluation.json").read_text())
    model = json.loads((out / "evaluation.json").read_text())
    md = (out / "robustness.md").read_text()
    for cat in CATEGORIES:  # both checkpoints share the student weights: identical rows, +0.00
        a = 100 * base["per_category"][cat]["accuracy"]
        b = 100 * model["per_category"][cat]["accuracy"]
        assert f"| {cat} | {base['per_category'][cat]['n']} | {a:.2f} | {b:.2f} | +0.00 |" in md
    assert (out / "robustness_category.png").stat().st_size > 2000
    assert (out / "robustness_coverage.png").stat().st_size > 2000
    header = next(line for line in res.output.splitlines() if line.strip().startswith("group"))
    assert "baseline" in header and "model" in header


def test_run_folders_are_accepted_where_checkpoints_are(tiny, tmp_path):
    """`fer-pi evaluate RUN` scores the run's checkpoint; --data takes the pairs folder too."""
    from fer_pi.checkpoint import resolve_checkpoint
    from fer_pi.errors import FerPiError

    by_file = CliRunner().invoke(cli, ["evaluate", str(tiny["ckpt"]), "--data", str(tiny["manifest"]),
                                       "--out", str(tmp_path / "a")])
    by_folder = CliRunner().invoke(cli, ["evaluate", str(tiny["ckpt"].parent), "--data", str(tiny["manifest"].parent),
                                         "--out", str(tmp_path / "b")])
    assert by_file.exit_code == 0 and by_folder.exit_code == 0, by_folder.output
    a, b = (json.loads((tmp_path / d / "evaluation.json").read_text()) for d in "ab")
    assert a["accuracy"] == b["accuracy"] and a["confusion"] == b["confusion"]
    assert b["checkpoint"] == str(tiny["ckpt"])
    run = tmp_path / "run"
    run.mkdir()
    for name in ("last.pt", "student.pt", "best.pt"):
        (run / name).write_bytes(b"x")
    assert resolve_checkpoint(run) == run / "best.pt"
    with pytest.raises(FerPiError, match="teacher.pt"):
        resolve_checkpoint(tmp_path / "a", "teacher")
