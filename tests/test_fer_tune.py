"""`fer-pi tune`: an Optuna study on the val split, resumable from its SQLite storage."""
from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))
from fer_fixtures import make_tiny_manifest, one_thread  # noqa: E402,F401

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    return make_tiny_manifest(tmp_path_factory.mktemp("tune_data"), n_per_class=3, size=32,
                              splits=("train", "val", "test"))


def _cli(args):
    from fer_pi.cli import cli

    return CliRunner().invoke(cli, args, catch_exceptions=False)


def _trials(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_quick_study_writes_outputs_and_best_config_trains(manifest, tmp_path):
    import optuna

    out = tmp_path / "study"
    res = _cli(["tune", "--quick", "--data", str(manifest), "--out", str(out), "--quiet",
                "--params", "lambda_adv,lr_student,k2"])
    assert res.exit_code == 0, res.output
    rows = _trials(out / "trials.csv")
    assert [r["state"] for r in rows] == ["COMPLETE", "COMPLETE"]
    assert {"lambda_adv", "lr_student", "k2", "val_acc_teacher", "val_psnr"} <= set(rows[0])
    assert all(0.0 <= float(r["value"]) <= 1.0 for r in rows)
    assert (out / "search.png").stat().st_size > 1000
    # intermediate values: one per epoch, reported to the pruner
    study = optuna.load_study(study_name="fer-pi-tune", storage=f"sqlite:///{out / 'study.db'}")
    assert all(sorted(t.intermediate_values) == [1, 2] for t in study.trials)
    best = json.loads((out / "best_config.json").read_text())
    summary = json.loads((out / "study.json").read_text())
    assert best["lambda_adv"] == summary["best_params"]["lambda_adv"] and best["teacher"] == ""
    assert best["val_split"] == "auto" and "test" not in json.dumps(summary["best_params"])
    # the test split was never scored: no trial folder holds a test evaluation
    assert not list(out.rglob("evaluation.json"))
    # fer-pi train --config accepts best_config.json and keeps its values
    run = tmp_path / "run"
    res = _cli(["train", "--config", str(out / "best_config.json"), "--out", str(run), "--quiet",
                "--data", str(out / "quick_data" / "manifest.csv"), "--epochs", "1"])
    assert res.exit_code == 0, res.output
    used = json.loads((run / "config.json").read_text())
    assert used["lambda_adv"] == best["lambda_adv"] and used["lr_student"] == best["lr_student"]
    assert used["arch"] == "tiny" and used["method"] == "full" and used["epochs"] == 1


def test_interrupted_study_resumes_from_sqlite(manifest, tmp_path):
    from fer_pi.cli.tune_cmd import QUICK, quick_subset
    from fer_pi.config import TrainConfig
    from fer_pi.engine import finetune
    from fer_pi.tune import tune

    out = tmp_path / "study"
    data = quick_subset(manifest, out)
    cfg = TrainConfig.from_preset("full", **{**QUICK, "epochs": 1}, data=str(data))
    calls = []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # the user's Ctrl-C during the second trial
        return finetune(*args, **kwargs)

    with pytest.raises(KeyboardInterrupt):
        tune(cfg, out, sampler="random", trials=3, params=["lambda_sim", "lr_student"], finetune_fn=interrupted)
    first = _trials_from_db(out)
    assert [t.state.name for t in first] == ["COMPLETE", "FAIL"]
    # the same call again: the study resumes, the finished trial is kept, two more run
    calls.clear()
    res = tune(cfg, out, sampler="random", trials=3, params=["lambda_sim", "lr_student"], finetune_fn=finetune)
    trials = _trials_from_db(out)
    assert [t.state.name for t in trials] == ["COMPLETE", "FAIL", "COMPLETE", "COMPLETE"]
    assert trials[0].params == first[0].params and trials[0].value == first[0].value
    assert res.n_complete == 3 and res.n_failed == 1
    # once complete, a rerun trains nothing
    res = tune(cfg, out, sampler="random", trials=3, params=["lambda_sim", "lr_student"], finetune_fn=interrupted)
    assert not calls and len(_trials_from_db(out)) == 4
    assert len(_trials(out / "trials.csv")) == 4


def _trials_from_db(out: Path):
    import optuna

    return optuna.load_study(study_name="fer-pi-tune", storage=f"sqlite:///{out / 'study.db'}").trials


def test_grid_sampler_and_explicit_storage(manifest, tmp_path):
    out, db = tmp_path / "study", tmp_path / "elsewhere" / "s.db"
    db.parent.mkdir()
    res = _cli(["tune", "--quick", "--data", str(manifest), "--out", str(out), "--quiet", "--sampler", "grid",
                "--preset", "sim", "--params", "lambda_sim", "--storage", f"sqlite:///{db}", "--trials", "2",
                "--pruner", "none"])
    assert res.exit_code == 0, res.output
    assert db.is_file() and not (out / "study.db").exists()
    values = sorted(float(r["lambda_sim"]) for r in _trials(out / "trials.csv"))
    from fer_pi.tune import SEARCH_SPACE

    assert set(values) <= set(SEARCH_SPACE["lambda_sim"].grid) and len(set(values)) == 2


def test_user_errors_exit_2(manifest, tmp_path):
    no_val = make_tiny_manifest(tmp_path / "noval", n_per_class=1, size=16)
    res = _cli(["tune", "--quick", "--data", str(no_val), "--out", str(tmp_path / "a")])
    assert res.exit_code == 2 and "no 'val' split" in res.output and "Traceback" not in res.output
    res = _cli(["tune", "--quick", "--data", str(manifest), "--out", str(tmp_path / "b"), "--params", "lambda_x"])
    assert res.exit_code == 2 and "lambda_x" in res.output
    res = _cli(["tune", "--quick", "--data", str(manifest), "--out", str(tmp_path / "c"), "--preset", "resnet",
                "--params", "lambda_adv"])
    assert res.exit_code == 2 and "nothing to search" in res.output
