"""Run-folder safety of `fer-pi pretrain` / `fer-pi train`: no earlier run is overwritten without
--overwrite, no pretraining made from other data/arch/seed is reused, a diverging run stops
without writing a non-finite checkpoint. Tiny net on tiny data (CliRunner)."""
from __future__ import annotations

import csv
import math

import pytest
import torch
from click.testing import CliRunner

from fer_fixtures import make_tiny_manifest, one_thread  # noqa: F401
from fer_pi.checkpoint import data_fingerprint, load_checkpoint, save_checkpoint
from fer_pi.cli import cli
from fer_pi.guards import NonFiniteError, check_losses, check_payload

pytestmark = pytest.mark.usefixtures("one_thread")
TINY = ["--arch", "tiny", "--weights", "none", "--image-size", "32", "--batch-size", "4", "--quiet"]


def _run(args):
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    return result.exit_code, result.output


def _one_line_error(out: str) -> str:
    """The one error line (log lines such as "no 'val' split" may precede it)."""
    assert "Traceback" not in out
    errors = [line for line in out.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1 and out.rstrip("\n").endswith(errors[0]), out
    return errors[0]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    a = make_tiny_manifest(root / "a", n_per_class=2, size=32, seed=0)
    b = make_tiny_manifest(root / "b", n_per_class=2, size=32, seed=1)  # other images, other manifest
    pre = root / "pre"
    code, out = _run(["pretrain", "--data", str(a), "--out", str(pre), "--epochs", "1", *TINY])
    assert code == 0, out
    return {"a": a, "b": b, "pre": pre}


def test_pretraining_checkpoints_record_their_fingerprint(data):
    for name in ("teacher.pt", "student.pt", "last.pt"):
        fp = load_checkpoint(data["pre"] / name)["fingerprint"]
        assert fp == {"data": data_fingerprint(data["a"]), "data_path": str(data["a"]), "arch": "tiny", "seed": 0}
    assert data_fingerprint(data["a"]).startswith("sha256:")
    assert data_fingerprint(data["a"]) == data_fingerprint(data["a"].parent)  # folder or manifest alike
    assert data_fingerprint(data["a"]) != data_fingerprint(data["b"])


def test_existing_run_folder_is_refused_without_resume_or_overwrite(data, tmp_path):
    run = tmp_path / "run"
    base = ["train", "--data", str(data["a"]), "--out", str(run), "--pretrained-run", str(data["pre"]),
            "--preset", "sim", "--epochs", "1", *TINY]
    code, out = _run(base)
    assert code == 0, out
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    assert {"best.pt", "last.pt", "config.json"} <= set(before)
    code, out = _run(base)
    line = _one_line_error(out)
    assert code == 2 and str(run) in line and "--resume" in line and "--overwrite" in line
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before  # nothing touched
    code, out = _run(["pretrain", "--data", str(data["a"]), "--out", str(data["pre"]), "--epochs", "1", *TINY])
    assert code == 2 and "earlier run" in _one_line_error(out)
    code, out = _run(base + ["--resume", "--overwrite"])
    assert code == 2 and "not both" in _one_line_error(out)

    # --overwrite replaces the run's own files and keeps the user's
    (run / "notes.txt").write_text("mine")
    (run / "eval").mkdir()
    (run / "eval" / "evaluation.json").write_text("{}")
    code, out = _run(base[:-len(TINY)] + ["--set", "lr_student=0.001", *TINY, "--overwrite"])
    assert code == 0, out
    assert (run / "notes.txt").read_text() == "mine"
    assert not (run / "eval").exists()  # the old run's evaluation is gone with it
    assert load_checkpoint(run / "last.pt")["config"]["lr_student"] == 0.001
    assert (run / "best.pt").read_bytes() != before["best.pt"]


def test_overwrite_refuses_to_delete_the_pretraining_it_starts_from(data, tmp_path):
    run = tmp_path / "inner"
    code, out = _run(["train", "--data", str(data["a"]), "--out", str(run), "--preset", "resnet",
                      "--epochs", "1", "--pretrain-epochs", "1", *TINY])
    assert code == 0, out
    code, out = _run(["train", "--data", str(data["a"]), "--out", str(run), "--pretrained-run", str(run / "pretrain"),
                      "--epochs", "1", *TINY, "--overwrite"])
    assert code == 2 and "starts from" in _one_line_error(out)
    assert (run / "pretrain" / "student.pt").is_file()


@pytest.mark.parametrize("change,old,new", [
    (["--data", "b"], "data_a", "data_b"),
    (["--seed", "3"], "seed 0", "seed 3"),
    (["--arch", "resnet18"], "arch tiny", "arch resnet18"),
])
def test_pretraining_of_other_data_seed_or_arch_is_refused(data, tmp_path, change, old, new):
    args = {"--data": str(data["a"]), "--seed": None, "--arch": None}
    args[change[0]] = str(data[change[1]]) if change[0] == "--data" else change[1]
    cmd = ["train", "--out", str(tmp_path / "r"), "--pretrained-run", str(data["pre"]), "--epochs", "1",
           "--image-size", "32", "--batch-size", "4", "--quiet"]
    for flag, value in args.items():
        cmd += [flag, value] if value is not None else []
    code, out = _run(cmd)
    line = _one_line_error(out)
    assert code == 2 and str(data["pre"]) in line and ".pt: pretrained with" in line
    expect = {"data_a": str(data["a"]), "data_b": str(data["b"])}
    assert expect.get(old, old) in line and expect.get(new, new) in line
    assert not (tmp_path / "r").exists()


def test_resume_refuses_an_inner_pretraining_whose_data_changed(data, tmp_path):
    root = tmp_path / "d"
    manifest = make_tiny_manifest(root, n_per_class=2, size=32)
    run = tmp_path / "run"
    code, out = _run(["train", "--data", str(manifest), "--out", str(run), "--preset", "resnet", "--epochs", "1",
                      "--pretrain-epochs", "1", *TINY])
    assert code == 0, out
    with open(manifest, newline="") as fh:  # the user regenerates the data in place: one pair fewer
        rows = list(csv.DictReader(fh))
    with open(manifest, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows[:-1])
    code, out = _run(["train", "--data", str(manifest), "--out", str(run), "--resume", "--epochs", "2", "--quiet"])
    line = _one_line_error(out)
    assert code == 2 and "manifest sha256" in line and "pretrain" in line
    assert load_checkpoint(run / "last.pt")["epoch"] == 1


def test_diverging_finetune_stops_and_writes_no_checkpoint(data, tmp_path):
    run = tmp_path / "nan"
    code, out = _run(["train", "--data", str(data["a"]), "--out", str(run), "--pretrained-run", str(data["pre"]),
                      "--epochs", "2", *TINY, "--set", "lr_student=1e30"])
    line = _one_line_error(out)
    assert code == 2 and "diverged" in line and ("nan" in line or "inf" in line)
    assert not (run / "best.pt").exists() and not (run / "last.pt").exists()


def test_diverging_pretraining_keeps_only_finite_checkpoints(data, tmp_path):
    """One batch per epoch: epoch 1's step is finite (its weights are huge but finite and are saved),
    epoch 2's loss is not: the run stops there and every checkpoint on disk is finite."""
    run = tmp_path / "nan1"
    code, out = _run(["pretrain", "--data", str(data["a"]), "--out", str(run), "--epochs", "3", "--arch", "tiny",
                      "--weights", "none", "--image-size", "32", "--batch-size", "64", "--quiet", "--lr", "1e30"])
    line = _one_line_error(out)
    assert code == 2 and "diverged" in line
    assert not (run / "teacher.pt").exists() and not (run / "student.pt").exists()
    last = load_checkpoint(run / "last.pt")
    assert last["epoch"] == 1
    for net in ("student", "teacher"):
        assert all(torch.isfinite(v).all() for v in last[net].values() if v.is_floating_point())


def test_guards_unit(tmp_path):
    check_losses({"loss_cls": 1.0, "correct": float("nan")})  # only loss* values are checked
    with pytest.raises(NonFiniteError, match="loss_total is inf"):
        check_losses({"loss_cls": 1.0, "loss_total": math.inf}, where="finetune")
    good = {"student": {"w": torch.ones(3)}, "metrics": {"loss_cls": 0.5, "val_acc": float("nan")}}
    check_payload(good)  # a NaN validation accuracy (no val split) is fine
    path = tmp_path / "best.pt"
    save_checkpoint(path, good)
    old = path.read_bytes()
    bad = {"student": {"w": torch.tensor([1.0, float("nan")]), "n": torch.tensor([3])}}
    with pytest.raises(NonFiniteError, match="student weights hold NaN or inf"):
        save_checkpoint(path, bad)
    assert path.read_bytes() == old  # the earlier, finite checkpoint is kept
    with pytest.raises(NonFiniteError, match="loss_cls"):
        save_checkpoint(tmp_path / "x.pt", {"student": {"w": torch.ones(1)}, "metrics": {"loss_cls": math.nan}})
    assert not (tmp_path / "x.pt").exists()


def test_public_api_all_names_resolve():
    import fer_pi

    for name in fer_pi.__all__:
        assert getattr(fer_pi, name) is not None, name
    assert fer_pi.launch.__module__ == "fer_pi.runs" and fer_pi.predict_paths.__module__ == "fer_pi.predict"
    assert issubclass(fer_pi.NonFiniteError, fer_pi.FerPiError)
