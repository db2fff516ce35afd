"""Validation in fer_pi: selection and curves on val only, teacher accuracy, PSNR, TensorBoard,
the BatchNorm mode of the teacher, and the resize-convolution decoder."""
from __future__ import annotations

import csv
import logging
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from fer_fixtures import make_tiny_manifest, one_thread  # noqa: E402,F401

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    from fer_pi.config import TrainConfig
    from fer_pi.engine import pretrain

    root = tmp_path_factory.mktemp("val")
    manifest = make_tiny_manifest(root / "data", n_per_class=2, size=32, splits=("train", "val", "test"))
    cfg = TrainConfig(data=str(manifest), arch="tiny", weights="none", image_size=32, batch_size=8,
                      pretrain_epochs=1, epochs=3, lr_pretrain=1e-3, lr_student=1e-3, num_workers=0)
    pre = pretrain(cfg, root / "pre", progress=False)
    return cfg.replace(teacher=str(pre / "teacher.pt"), student=str(pre / "student.pt")), manifest


def _rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_val_curves_teacher_psnr_and_selection_on_val(pretrained, tmp_path):
    from fer_pi.checkpoint import load_checkpoint
    from fer_pi.engine import finetune

    cfg, _ = pretrained
    seen = []
    out = finetune(cfg.replace(log="tensorboard"), tmp_path / "full", progress=False,
                   on_epoch=lambda epoch, row: seen.append((epoch, row["val_acc"])))
    rows = _rows(out / "summary.csv")
    assert len(rows) == 3 and [e for e, _ in seen] == [1, 2, 3]
    for r in rows:
        assert 0 <= float(r["val_acc"]) <= 1 and 0 <= float(r["val_acc_teacher"]) <= 1
        assert 0 < float(r["val_psnr"]) < 100
    # the teacher is frozen: its clean val accuracy is the same every epoch
    assert len({r["val_acc_teacher"] for r in rows}) == 1
    best = load_checkpoint(out / "best.pt")
    accs = [float(r["val_acc"]) for r in rows]
    assert best["epoch"] == 1 + accs.index(max(accs)) and best["val_split"] == "val"
    events = list((out / "tensorboard").glob("events.out.tfevents.*"))
    assert events
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(out / "tensorboard"), size_guidance={"images": 0}).Reload()
    assert {"finetune/val_acc", "finetune/loss_adv", "finetune/val_acc_teacher"} <= set(acc.Tags()["scalars"])
    assert [e.step for e in acc.Scalars("finetune/val_acc")] == [1, 2, 3]
    assert acc.Tags()["images"]  # the reconstruction grid


def test_without_val_split_says_so_and_keeps_last_epoch(tmp_path, caplog):
    from fer_pi.checkpoint import load_checkpoint
    from fer_pi.config import TrainConfig
    from fer_pi.engine import train

    manifest = make_tiny_manifest(tmp_path / "data", n_per_class=1, size=32)
    cfg = TrainConfig(data=str(manifest), arch="tiny", weights="none", image_size=32, batch_size=8,
                      pretrain_epochs=1, epochs=2, num_workers=0, method="rec", use_sim=False,
                      use_ineq=False, use_adv=False)
    with caplog.at_level(logging.INFO, logger="fer_pi"):
        out = train(cfg, tmp_path / "run", progress=False)
    assert "no 'val' split" in caplog.text
    assert load_checkpoint(out / "best.pt")["epoch"] == 2
    rows = _rows(out / "summary.csv")
    assert all(r["val_acc"] == "" for r in rows)  # nothing scored on test


def test_teacher_batch_statistics_leave_teacher_untouched(pretrained):
    from fer_pi.engine.steps import PrivilegedTask
    from fer_pi.data import PairedDataset, build_loader
    from fer_pi.models import Decoder, Discriminator, load_for_inference

    cfg, manifest = pretrained
    teacher, _ = load_for_inference(cfg.teacher, "teacher")
    student, _ = load_for_inference(cfg.student, "student")
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    batch = next(iter(build_loader(PairedDataset(manifest, "train", 32), 8, False, 0, 0)))
    outs = {}
    for mode in ("eval", "batch"):
        c = cfg.replace(teacher_bn=mode)
        task = PrivilegedTask(student, teacher, Discriminator(16), Decoder(16, 32), c)
        task.train(True)
        outs[mode] = task.forward(batch).h_c
    assert not torch.allclose(outs["eval"], outs["batch"])  # batch statistics really used
    assert not teacher.training and all(torch.equal(before[k], v) for k, v in teacher.state_dict().items())
    # in batch mode the teacher features are normalised per channel like the train-mode student's
    with torch.no_grad():
        bn_in = teacher.layer2[0].bn2
        assert bn_in.track_running_stats and not bn_in.training


def test_decoder_is_resize_convolution_without_checkerboard():
    from fer_pi.models import Decoder

    dec = Decoder(16, 64).eval()
    assert not any(isinstance(m, torch.nn.ConvTranspose2d) for m in dec.modules())
    with torch.no_grad():
        out = dec(torch.ones(1, 16, 8, 8))
    inner = out[0, :, 8:-8, 8:-8]
    # a constant feature map decodes to a constant image (per channel) away from the padded border
    assert float((inner.amax(dim=(1, 2)) - inner.amin(dim=(1, 2))).max()) < 1e-5


def test_evaluate_checkpoint_reports_teacher_and_psnr(pretrained, tmp_path):
    from fer_pi.engine import finetune
    from fer_pi.evaluation import evaluate_checkpoint
    from fer_pi.report import evaluation_markdown

    cfg, manifest = pretrained
    out = finetune(cfg.replace(epochs=1), tmp_path / "run", progress=False)
    res = evaluate_checkpoint(out / "last.pt", manifest, split="test", device="cpu")
    assert res["teacher"]["checkpoint"] == cfg.teacher and 0 <= res["teacher"]["accuracy"] <= 1
    assert res["teacher"]["n"] == res["n"] and 0 < res["rec_psnr"] < 100
    md = evaluation_markdown({k: v for k, v in res.items() if k != "examples"})
    assert "teacher on clean" in md and "PSNR" in md
    # a pre-training student finds the teacher.pt next to it
    pre = evaluate_checkpoint(cfg.student, manifest, split="test", device="cpu")
    assert pre["teacher"]["checkpoint"].endswith("teacher.pt")


def test_teacher_accuracy_reaches_ablation_and_demo_tables(tmp_path):
    import json

    from fer_pi.ablation import RESULT_COLUMNS, summarize
    from fer_pi.report import ablation_markdown, write_demo_report

    rows = [{"preset": p, "seed": s, "occluded_acc": f"{40 + s}", "clean_acc": "50", "teacher_acc": f"{70 + s}",
             "n_test": 10} for p in ("resnet", "full") for s in (0, 1)]
    assert "teacher_acc" in RESULT_COLUMNS
    summary = summarize(rows)
    assert summary[0]["teacher_mean"] == pytest.approx(70.5)
    md = ablation_markdown(summary)
    assert "teacher clean acc (%)" in md and "| 70.50 |" in md
    for name, acc in (("resnet", 0.4), ("full", 0.45)):
        run = tmp_path / name
        run.mkdir()
        (run / "evaluation.json").write_text(json.dumps(
            {"accuracy": acc, "n": 10, "clean": {"accuracy": 0.5, "n": 10},
             "teacher": {"accuracy": 0.8, "n": 10}, "rec_mse": 0.01, "rec_psnr": 20.0}))
    text = write_demo_report([tmp_path / "resnet", tmp_path / "full"], tmp_path / "report.md").read_text()
    assert "teacher clean acc (%)" in text and "| 80.00 |" in text and "rec PSNR (dB)" in text
