"""`fer-pi pretrain` and `fer-pi train` end to end on tiny data with the tiny net (CliRunner)."""
from __future__ import annotations

import csv

import pytest
from click.testing import CliRunner

from fer_fixtures import make_tiny_manifest, one_thread  # noqa: F401
from fer_pi.checkpoint import load_checkpoint
from fer_pi.cli import cli

pytestmark = pytest.mark.usefixtures("one_thread")
TINY = ["--arch", "tiny", "--weights", "none", "--image-size", "32", "--batch-size", "4", "--quiet"]


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    return make_tiny_manifest(tmp_path_factory.mktemp("tinycli"), n_per_class=2, size=32)


def _run(args):
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    return result.exit_code, result.output


def test_pretrain_then_train_from_pretrained_run(manifest, tmp_path):
    pre = tmp_path / "pre"
    code, out = _run(["pretrain", "--data", str(manifest), "--out", str(pre), "--epochs", "1", *TINY])
    assert code == 0, out
    for name in ("teacher.pt", "student.pt", "last.pt", "config.json", "summary.csv", "curves.png"):
        assert (pre / name).is_file(), name
    assert "teacher" in load_checkpoint(pre / "teacher.pt") and "student" in load_checkpoint(pre / "student.pt")

    run = tmp_path / "full"
    code, out = _run(["train", "--data", str(manifest), "--out", str(run), "--pretrained-run", str(pre),
                      "--preset", "full", "--epochs", "2", "--quiet", "--set", "lambda_rec=0.5",
                      "--set", "val_split=test"])  # the tiny manifest has no val split: watch test
    assert code == 0, out
    for name in ("config.json", "summary.csv", "curves.png", "last.pt", "best.pt"):
        assert (run / name).is_file(), name
    ckpt = load_checkpoint(run / "last.pt")
    assert ckpt["config"]["arch"] == "tiny"  # inherited from the pretrained run
    assert ckpt["config"]["lambda_rec"] == 0.5 and ckpt["epoch"] == 2
    assert {"student", "discriminator", "decoder"} <= set(ckpt)
    rows = list(csv.DictReader(open(run / "summary.csv")))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    for key in ("loss_cls", "loss_sim", "loss_ineq", "loss_adv", "loss_disc", "loss_rec", "val_acc"):
        assert rows[0][key] != "", key

    # resume a finished run for one more epoch
    code, out = _run(["train", "--data", str(manifest), "--out", str(run), "--resume", "--epochs", "3",
                      "--quiet"])
    assert code == 0, out
    assert load_checkpoint(run / "last.pt")["epoch"] == 3


def test_train_pretrains_inside_the_run(manifest, tmp_path):
    run = tmp_path / "rec"
    code, out = _run(["train", "--data", str(manifest), "--out", str(run), "--preset", "rec",
                      "--epochs", "1", "--pretrain-epochs", "1", *TINY])
    assert code == 0, out
    assert (run / "pretrain" / "teacher.pt").is_file() and (run / "best.pt").is_file()
    ckpt = load_checkpoint(run / "best.pt")
    assert "decoder" in ckpt and "discriminator" not in ckpt
    assert ckpt["config"]["student"].endswith("student.pt")


def test_bad_set_key_exits_2_naming_it(manifest, tmp_path):
    code, out = _run(["train", "--data", str(manifest), "--out", str(tmp_path / "x"), *TINY,
                      "--set", "lambda_bogus=3"])
    assert code == 2 and "lambda_bogus" in out and "Traceback" not in out
    code, out = _run(["train", "--data", str(manifest), "--out", str(tmp_path / "x"), *TINY,
                      "--set", "epochs=many"])
    assert code == 2 and "epochs=many" in out
    code, out = _run(["pretrain", "--data", str(manifest), "--out", str(tmp_path / "x"), *TINY,
                      "--set", "num_classes=5"])
    assert code == 2 and "num_classes=5" in out and "0..6" in out


def test_missing_imagenet_weights_exit_2_with_path(manifest, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    code, out = _run(["pretrain", "--data", str(manifest), "--out", str(tmp_path / "w"),
                      "--arch", "resnet18", "--weights", "imagenet", "--image-size", "32", "--quiet"])
    assert code == 2 and "resnet18-f37072fd.pth" in out and str(tmp_path / "th") in out


def test_resume_without_run_and_missing_teacher(manifest, tmp_path):
    code, out = _run(["train", "--data", str(manifest), "--out", str(tmp_path / "none"), "--resume", *TINY])
    assert code == 2 and "nothing to resume" in out
    code, out = _run(["train", "--data", str(manifest), "--out", str(tmp_path / "y"),
                      "--teacher", str(tmp_path / "missing.pt"), *TINY])
    assert code == 2 and "missing.pt" in out
