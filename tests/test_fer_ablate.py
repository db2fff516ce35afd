"""``fer-pi ablate --quick`` end to end, the summary statistics, and the demo report."""
from __future__ import annotations

import csv
import json
import math
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))
from fer_fixtures import make_tiny_manifest  # noqa: E402

from fer_pi import ablation, report  # noqa: E402
from fer_pi.cli import cli  # noqa: E402


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("ablate")
    manifest = make_tiny_manifest(root / "data", n_per_class=2, size=32)
    out = root / "abl"
    res = CliRunner().invoke(cli, ["ablate", "--out", str(out), "--data", str(manifest), "--quick",
                                   "--presets", "resnet,full"])
    return {"root": root, "manifest": manifest, "out": out, "result": res}


def test_ablate_quick_writes_results(quick_run):
    res, out = quick_run["result"], quick_run["out"]
    assert res.exit_code == 0, res.output
    with open(out / "results.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["preset"], r["seed"]) for r in rows] == [("pretrain", "0"), ("resnet", "0"), ("full", "0")]
    for r in rows:
        ev = json.loads((Path(r["checkpoint"]).parent / "eval" / "evaluation.json").read_text())
        assert float(r["occluded_acc"]) == pytest.approx(100 * ev["accuracy"], abs=1e-3)
        assert int(r["n_test"]) == ev["n"] == 14
        assert ev["split"] == "test"
    # fine-tuned from the shared pre-training, evaluated at the final epoch (no test-set selection)
    assert rows[1]["checkpoint"].endswith("seed0/resnet/last.pt")
    cfg = json.loads((out / "seed0" / "full" / "config.json").read_text())
    assert cfg["teacher"].endswith("seed0/pretrain/teacher.pt") and cfg["method"] == "full"
    assert cfg["val_split"] == "none" and cfg["arch"] == "tiny" and cfg["epochs"] == 1
    md = (out / "results.md").read_text()
    assert "| resnet | ResNet |" in md and "77.54" in md and "81.97" in md
    assert "--quick run" in md and "single seed" in md
    assert "Command: `fer-pi ablate --out " in md and "--presets resnet,full" in md
    assert (out / "robustness_category.png").stat().st_size > 2000
    with open(out / "results_groups.csv", newline="") as fh:
        groups = list(csv.DictReader(fh))
    assert {g["kind"] for g in groups} == {"category", "coverage"}


def test_ablate_resumes_without_retraining(quick_run):
    out = quick_run["out"]
    ckpt = out / "seed0" / "full" / "last.pt"
    before = ckpt.stat().st_mtime_ns
    res = CliRunner().invoke(cli, ["ablate", "--out", str(out), "--data", str(quick_run["manifest"]), "--quick",
                                   "--presets", "resnet,full"])
    assert res.exit_code == 0, res.output
    assert ckpt.stat().st_mtime_ns == before


def test_split_plan_balances_seeds_over_jobs():
    presets = ablation.PRESETS
    parts = ablation.split_plan([0, 1, 2], [3, 4], presets, 2)
    assert sorted(s for full, _ in parts for s in full) == [0, 1, 2]
    assert sorted(s for _, pair in parts for s in pair) == [3, 4]
    cost = [len(full) * (2 + len(presets)) + len(pair) * 4 for full, pair in parts]
    assert max(cost) - min(cost) <= 2 + len(presets)
    assert ablation.split_plan([0], [], presets, 4) == [([0], [])]  # no empty jobs


def test_ablate_jobs_run_seeds_in_parallel_processes(quick_run, tmp_path):
    """--jobs 2: the seeds train in two processes and give the same runs as one after another."""
    out = tmp_path / "abl"
    res = CliRunner().invoke(cli, ["ablate", "--out", str(out), "--data", str(quick_run["manifest"]), "--quick",
                                   "--presets", "resnet,full", "--seeds", "0,1", "--jobs", "2"])
    assert res.exit_code == 0, res.output
    assert "[job 0] seeds [0]" in res.output and "[job 1] seeds [1]" in res.output
    with open(out / "results.csv", newline="") as fh:
        rows = {(r["preset"], r["seed"]): r for r in csv.DictReader(fh)}
    assert set(rows) == {(p, s) for p in ("pretrain", "resnet", "full") for s in ("0", "1")}
    with open(quick_run["out"] / "results.csv", newline="") as fh:
        alone = {(r["preset"], r["seed"]): r for r in csv.DictReader(fh)}
    for key in (("resnet", "0"), ("full", "0")):
        assert rows[key]["occluded_acc"] == alone[key]["occluded_acc"]
    assert "--jobs 2" in (out / "results.md").read_text()


def test_ablate_rejects_bad_options(tmp_path):
    res = CliRunner().invoke(cli, ["ablate", "--presets", "resnet,bogus", "--out", str(tmp_path)])
    assert res.exit_code == 2 and "bogus" in res.output
    res = CliRunner().invoke(cli, ["ablate", "--seeds", "a,b", "--out", str(tmp_path)])
    assert res.exit_code == 2 and "seeds" in res.output.lower()


def test_summarize_mean_std_by_hand():
    rows = [{"preset": "resnet", "occluded_acc": "70.0", "clean_acc": "80.0"},
            {"preset": "resnet", "occluded_acc": "74.0", "clean_acc": "82.0"},
            {"preset": "full", "occluded_acc": "75.0", "clean_acc": "81.0"}]
    s = {x["preset"]: x for x in ablation.summarize(rows)}
    assert s["resnet"]["mean"] == 72.0 and s["resnet"]["std"] == pytest.approx(2 ** 0.5 * 2)
    assert s["resnet"]["clean_mean"] == 81.0 and s["full"]["n"] == 1 and math.isnan(s["full"]["std"])


def _rows(diffs, seen=None):
    rows = []
    for seed, d in enumerate(diffs):
        rows.append({"preset": "resnet", "seed": seed, "occluded_acc": "50.0", "seen_acc": "60.0", "unseen_acc": ""})
        rows.append({"preset": "full", "seed": seed, "occluded_acc": f"{50.0 + d}",
                     "seen_acc": "" if seen is None else f"{60.0 + seen[seed]}", "unseen_acc": ""})
    return rows


def test_t_interval_and_paired_differences_by_hand():
    from fer_pi.ablation_report import paired_differences, t_interval

    iv = t_interval([1.0, 2.0, 3.0])  # mean 2, std 1, t(0.975, df 2) = 4.3027
    assert iv.mean == 2.0 and iv.std == pytest.approx(1.0) and iv.n == 3
    assert iv.hi - iv.mean == pytest.approx(4.302653 / 3 ** 0.5, rel=1e-5) and iv.lo == pytest.approx(2 * 2 - iv.hi)
    one = t_interval([5.0])
    assert one.mean == 5.0 and math.isnan(one.lo) and one.n == 1
    rows = _rows([1.0, -2.0, 4.0], seen=[0.5, 0.5, 0.5])
    assert paired_differences(rows, "full") == {0: 1.0, 1: -2.0, 2: 4.0}
    assert paired_differences(rows, "full", "seen_acc") == {0: 0.5, 1: 0.5, 2: 0.5}
    assert paired_differences(rows, "full", "unseen_acc") == {}


def test_noise_statement_uses_the_paired_interval():
    text = ablation.noise_statement(_rows([1.0, -2.0, 4.0]))
    assert "+1.00" in text and "contains zero" in text and "not significant" in text
    # the same spread of the means, but the per-seed differences agree: significant
    text = ablation.noise_statement(_rows([2.0, 2.5, 3.0, 2.0, 2.5]))
    assert "better than resnet beyond the seed noise" in text and "5 seeds" in text
    assert "worse than" in ablation.noise_statement(_rows([-2.0, -2.5, -3.0]))
    assert "single seed" in ablation.noise_statement(_rows([3.0]))


def test_demo_report_links_pictures_relatively(quick_run, tmp_path):
    out = quick_run["out"]
    # what `make demo` does: `fer-pi evaluate` each run (pictures + evaluation.json), then the report
    ev = CliRunner().invoke(cli, ["evaluate", str(out / "seed0" / "full" / "last.pt"), "--data",
                                  str(quick_run["manifest"]), "--out", str(out / "seed0" / "full" / "eval")])
    assert ev.exit_code == 0, ev.output
    md = report.write_demo_report([out / "seed0" / "resnet", out / "seed0" / "full"], tmp_path / "rep" / "report.md",
                                  pairs_dir=quick_run["manifest"].parent)
    text = md.read_text()
    assert "| resnet |" in text and "| full |" in text
    assert "Accuracy per occluder category" in text
    links = [line.split("](", 1)[1].rstrip(")\n") for line in text.splitlines() if "![" in line]
    assert any(link.endswith("curves.png") for link in links)
    assert any(link.endswith("full/eval/confusion.png") for link in links)
    assert any(link.endswith("full/eval/reconstructions.png") for link in links)
    for link in links:
        assert not Path(link).is_absolute() and (md.parent / link).is_file(), link
    assert (md.parent / "example_pairs.png").stat().st_size > 2000
    from fer_pi.errors import DataError

    with pytest.raises(DataError, match="fer-pi evaluate"):
        report.write_demo_report([tmp_path], tmp_path / "x.md")


def test_report_command_run_dir_and_runs(quick_run, tmp_path):
    """`fer-pi report --run-dir RUN` (the make demo call): RUN/resnet vs RUN/full; and RUNS --out."""
    out = quick_run["out"] / "seed0"
    target = tmp_path / "report.md"
    res = CliRunner().invoke(cli, ["report", "--run-dir", str(out), "--out", str(target)])
    assert res.exit_code == 0, res.output
    assert f"wrote {target}" in res.output
    text = target.read_text()
    assert "| resnet |" in text and "| full |" in text
    assert (tmp_path / "example_pairs.png").is_file()  # pairs folder found from the run's config.json
    res = CliRunner().invoke(cli, ["report", "--run-dir", str(tmp_path)])
    assert res.exit_code == 2 and "none of the run folders" in res.output and "Traceback" not in res.output
    res = CliRunner().invoke(cli, ["report", str(out / "resnet"), str(out / "full"), "--names", "base,ours",
                                   "--out", str(tmp_path / "two.md")])
    assert res.exit_code == 0, res.output
    assert "| base |" in (tmp_path / "two.md").read_text()
    res = CliRunner().invoke(cli, ["report", str(out / "resnet"), "--names", "a,b", "--out", str(tmp_path / "x.md")])
    assert res.exit_code == 2 and "--names" in res.output
    res = CliRunner().invoke(cli, ["report", str(out / "resnet")])
    assert res.exit_code == 2 and "--out" in res.output


def test_ablate_quick_builds_demo_data_and_pairs(tmp_path):
    """Without --data: the demo data and its pairs through occlusion_synth's Python API (real photos,
    real landmarks), then train."""
    out = tmp_path / "abl"
    res = CliRunner().invoke(cli, ["ablate", "--out", str(out), "--quick", "--presets", "full"])
    assert res.exit_code == 0, res.output
    manifest = out / "data" / "pairs" / "manifest.csv"
    with open(manifest, newline="") as fh:
        pairs = list(csv.DictReader(fh))
    assert {p["split"] for p in pairs} == {"train", "val", "test"}  # --val-fraction 0.2
    info = json.loads((manifest.parent / "dataset.json").read_text())
    assert info["options"]["holdout_templates"] == ablation.DEMO_HOLDOUT_TEMPLATES
    unseen = {t["name"] for t in info["templates"] if t["set"] == "unseen"}
    assert unseen and not any(p["template"] in unseen for p in pairs if p["split"] != "test")
    with open(out / "results.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    test_n = sum(p["split"] == "test" for p in pairs)
    assert [r["preset"] for r in rows] == ["pretrain", "full"] and int(rows[1]["n_test"]) == test_n
    assert f"demo data -> {out / 'data' / 'demo'}" in res.output and f"pairs -> {out / 'data' / 'pairs'}" in res.output


def test_report_only_trains_nothing(quick_run):
    out = quick_run["out"]
    before = (out / "results.csv").read_text()
    for ckpt in out.glob("seed0/*/last.pt"):
        ckpt.unlink()  # evaluated runs count by their evaluation.json, not their checkpoints
    res = CliRunner().invoke(cli, ["ablate", "--out", str(out), "--data", str(quick_run["manifest"]), "--quick",
                                   "--presets", "resnet,full,sim", "--report-only"])
    assert res.exit_code == 0, res.output
    assert "[seed 0] sim: not finished, left out (report only)" in res.output
    assert not list(out.glob("seed0/*/last.pt")) and not (out / "seed0" / "sim").exists()
    with open(out / "results.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["preset"] for r in rows] == ["pretrain", "resnet", "full"]
    assert [r["occluded_acc"] for r in rows] == [r["occluded_acc"] for r in csv.DictReader(before.splitlines())]
