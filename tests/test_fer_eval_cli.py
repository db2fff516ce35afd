"""``fer-pi evaluate`` / ``predict`` / ``bench`` end to end on a tiny net and tiny data."""
from __future__ import annotations

import csv
import json
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


def test_predict_photo_with_and_without_face_crop_and_broken_file(tiny, photos, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image at all")
    img = str(photos["obama.jpg"])
    res = CliRunner().invoke(cli, ["predict", str(tiny["ckpt"]), img, str(broken), "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out[0]["image"] == img and out[0]["face_box"] is None
    assert sum(out[0]["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    assert out[0]["label_name"] == max(out[0]["probabilities"], key=out[0]["probabilities"].get)
    assert out[1]["image"] == str(broken) and "broken.jpg" in out[1]["error"]
    res = CliRunner().invoke(cli, ["predict", str(tiny["ckpt"]), img, "--face-crop", "--json"])
    assert res.exit_code == 0, res.output
    cropped = json.loads(res.output)[0]
    x0, y0, x1, y1 = cropped["face_box"]
    assert 0 <= x0 < x1 and 0 <= y0 < y1  # a real detection on a real photo
    # text mode: a label line per image, an error line naming the broken file
    res = CliRunner().invoke(cli, ["predict", str(tiny["ckpt"]), img, str(broken)])
    assert res.exit_code == 0
    assert f"{img}: " in res.output and f"{broken}: ERROR" in res.output


def test_predict_exits_2_when_nothing_readable(tiny, tmp_path):
    broken = tmp_path / "x.png"
    broken.write_bytes(b"\x89PNG broken")
    res = CliRunner().invoke(cli, ["predict", str(tiny["ckpt"]), str(broken), str(tmp_path / "missing.png")])
    assert res.exit_code == 2
    assert "x.png" in res.output and "missing.png" in res.output


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
