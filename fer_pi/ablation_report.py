"""``results.md`` of an ablation: the Table-1 comparison with the paper, seed noise, paired
differences, robustness tables and charts, final losses, per-seed rows (:func:`write_results_md`).

Reads the rows and evaluations :func:`fer_pi.ablation.run_ablation` collected; writes markdown
and PNGs only.
"""
from __future__ import annotations

import csv
import math
import os
import platform
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from . import metrics
from .report import PAPER_TABLE1, _table, ablation_markdown, robustness_markdown, write_text

CONFIDENCE = 0.95  # of the paired-difference intervals


def _mean_groups(evals: dict, preset: str, key: str) -> dict:
    """Per-group accuracy averaged over seeds (fractions), with the per-seed sample count."""
    per: dict[str, list[float]] = {}
    ns: dict[str, int] = {}
    for (p, _seed), res in evals.items():
        if p != preset:
            continue
        for g, v in (res.get(key) or {}).items():
            if v.get("accuracy") is not None:
                per.setdefault(g, []).append(v["accuracy"])
                ns[g] = v.get("n", 0)
    return {g: {"accuracy": sum(v) / len(v), "n": ns[g]} for g, v in per.items()}


def _hardware(threads_cfg: int | None = None) -> str:
    from .evaluation import _cpu_name

    try:
        import torch

        threads = threads_cfg or torch.get_num_threads()
        gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    except Exception:  # pragma: no cover - torch is a hard dependency
        threads, gpu = "?", "?"
    return f"{_cpu_name(platform.machine())}, {os.cpu_count()} logical CPUs, torch threads {threads}, {gpu}"


def write_results_md(out: Path, summary: list[dict], rows: list[dict], evals: dict, config: dict,
                     seeds: list[int], manifest: Path, command: str, wall_s: float, quick: bool) -> Path:
    """Write ``results.md`` (table, robustness tables, bar charts, settings) and return its path."""
    from . import plots

    table_rows = [s for s in summary if s["preset"] != "pretrain"]
    pre = next((s for s in summary if s["preset"] == "pretrain"), None)
    lines = ["# Ablation: privileged-information losses on occluded expression recognition\n\n"]
    if quick:
        lines.append("**--quick run: a pipeline check with a tiny net for one epoch; the numbers mean nothing.**\n\n")
    lines.append(f"Command: `{command or 'fer-pi ablate'}`  \n")
    from .data import read_manifest

    counts: dict[str, int] = {}
    for r in read_manifest(manifest):
        counts[r["split"]] = counts.get(r["split"], 0) + 1
    sizes = ", ".join(f"{k} {v}" for k, v in counts.items())
    lines.append(f"Data: `{manifest}` ({sizes} pairs); evaluated on the occluded "
                 f"`{config.get('test_split', 'test')}` split "
                 "(clean images of the same pairs for reference); no model selection on it (final epoch).  \n")
    lines.append(f"Model: {config.get('arch')} ({config.get('weights')} init), {config.get('image_size')} px, "
                 f"pre-training {config.get('pretrain_epochs')} epochs, fine-tuning {config.get('epochs')} epochs, "
                 f"batch {config.get('batch_size')}, lr student {config.get('lr_student')}, D {config.get('lr_disc')}, "
                 f"lambdas sim/ineq/adv/rec {config.get('lambda_sim')}/{config.get('lambda_ineq')}/"
                 f"{config.get('lambda_adv')}/{config.get('lambda_rec')}, "
                 f"K1/K2 {config.get('k1')}/{config.get('k2')}.  \n")
    lines.append(f"Seeds: {', '.join(map(str, seeds))} (mean and sample std over seeds).  \n")
    total = sum(float(r["train_s"]) for r in rows if r["train_s"])
    lines.append(f"Hardware: {_hardware(config.get('threads'))}; training time {total / 60:.1f} min "
                 "(sum of the runs' epoch times), "
                 f"wall time of this invocation {wall_s / 60:.1f} min.\n\n")
    lines.append("## Accuracy on the occluded test split (%)\n\n")
    lines.append(ablation_markdown(table_rows))
    if pre is not None:
        std = "n/a" if math.isnan(pre["std"]) else f"{pre['std']:.2f}"
        lines.append(f"\nPre-trained student before fine-tuning (shared by all presets): {pre['mean']:.2f} "
                     f"(std {std}) occluded, {pre['clean_mean']:.2f} clean.\n")
    by = {s["preset"]: s for s in table_rows}
    if "resnet" in by and "full" in by:
        lines.append("\n" + noise_statement(rows) + "\n")
    paired = _paired_rows(rows, [s["preset"] for s in table_rows])
    if paired:
        lines.append("\nPaired differences to `resnet` in points (each seed's presets share one pre-training and "
                     "the same test images, so the per-seed difference removes the pre-training luck); mean over "
                     "seeds with its 95 % t-interval; seen/unseen: the test pairs occluded by training templates "
                     "vs by held-out templates (blocks in neither):\n\n")
        lines.append(_table(PAIRED_HEADER, paired))
    lines.append("\nPaper column: Pan et al. 2019, Table 1, RAF-DB (ResNet-50, ImageNet init, 88 px, real RAF-DB "
                 "with synthesized food/hand/drink occluders).\n")
    if "resnet" in by and "full" in by:
        results = {"resnet": {}, "full": {}}
        for key, label, png in (("per_category", "occluder category", "robustness_category.png"),
                                ("per_coverage_bin", "coverage bin", "robustness_coverage.png")):
            for m in results:
                results[m][key] = _mean_groups(evals, m, key)
            if results["resnet"][key]:
                lines.append(f"\n## Accuracy per {label}, baseline vs full (mean over seeds)\n\n")
                lines.append(robustness_markdown(results, key, label))
                bars = {m: {g: 100 * v["accuracy"] for g, v in results[m][key].items()} for m in results}
                plots.plot_category_bars(bars, out / png, title=f"accuracy by {label}: resnet vs full")
                lines.append(f"\n![accuracy per {label}]({png})\n")
    loss_rows = _loss_table(out, [s["preset"] for s in table_rows], seeds)
    if loss_rows:
        lines.append("\n## Final-epoch training losses (unweighted, mean over seeds)\n\n"
                     "From each run's `summary.csv` (training split only); shows the scale of each term "
                     "next to `loss_cls` before its lambda.\n\n")
        lines.append(_table(["preset"] + list(LOSS_KEYS), loss_rows))
    lines.append("\n## Per seed\n\n")
    lines.append(_table(["preset", "seed", "occluded acc (%)", "seen occluders (%)", "unseen occluders (%)",
                         "clean acc (%)", "teacher clean acc (%)", "n test (seen/unseen)", "time (s)"],
                        [[r["preset"], r["seed"], _two(r["occluded_acc"]), _two(r.get("seen_acc", "")),
                          _two(r.get("unseen_acc", "")), _two(r["clean_acc"]), _two(r.get("teacher_acc", "")),
                          f"{r['n_test']} ({r.get('n_seen', '')}/{r.get('n_unseen', '')})", r["train_s"]]
                         for r in rows]))
    path = out / "results.md"
    write_text(path, "".join(lines))
    return path


LOSS_KEYS = ("loss_cls", "loss_sim", "loss_ineq", "loss_adv", "loss_disc", "loss_rec", "train_acc")


def _loss_table(out: Path, presets: Sequence[str], seeds: Sequence[int]) -> list[list[str]]:
    rows = []
    for p in presets:
        vals: dict[str, list[float]] = {k: [] for k in LOSS_KEYS}
        for seed in seeds:
            path = out / f"seed{seed}" / p / "summary.csv"
            if not path.is_file():
                continue
            with open(path, newline="", encoding="utf-8") as fh:
                last = (list(csv.DictReader(fh)) or [{}])[-1]
            for k in LOSS_KEYS:
                try:
                    vals[k].append(float(last.get(k) or "nan"))
                except ValueError:
                    pass
        cells = []
        for k in LOSS_KEYS:
            m = metrics.mean_std(vals[k])[0]
            cells.append("" if math.isnan(m) else f"{m:.4f}")
        if any(cells):
            rows.append([p] + cells)
    return rows


@dataclass(frozen=True)
class Interval:
    """Mean of ``n`` values with its two-sided t confidence interval ``[lo, hi]`` (nan for n < 2)."""

    mean: float
    lo: float
    hi: float
    std: float
    n: int


def t_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> Interval:
    """Student-t interval for the mean of ``values`` (sample std, ``n - 1`` degrees of freedom)."""
    from scipy import stats

    mean, std, n = metrics.mean_std(values)
    if n < 2:
        return Interval(mean, math.nan, math.nan, std, n)
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * std / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, std, n)


def paired_differences(rows: Sequence[dict], preset: str, column: str = "occluded_acc",
                       baseline: str = "resnet") -> dict[int, float]:
    """``{seed: preset - baseline}`` (points) over the seeds where both have ``column``."""
    def by_seed(p: str) -> dict:
        return {int(r["seed"]): float(r[column]) for r in rows if r["preset"] == p and r.get(column) not in ("", None)}

    base, other = by_seed(baseline), by_seed(preset)
    return {s: other[s] - base[s] for s in sorted(other) if s in base}


def _ci_cell(iv: Interval) -> str:
    if iv.n == 0:
        return ""
    if iv.n < 2:
        return f"{iv.mean:+.2f} (1 seed)"
    return f"{iv.mean:+.2f} [{iv.lo:+.2f}, {iv.hi:+.2f}]"


def _paired_rows(rows: Sequence[dict], presets: Sequence[str]) -> list[list[str]]:
    out = []
    for p in presets:
        if p == "resnet":
            continue
        diffs = paired_differences(rows, p)
        if not diffs:
            continue
        iv = t_interval(list(diffs.values()))
        cells = [_ci_cell(t_interval(list(paired_differences(rows, p, c).values())))
                 for c in ("seen_acc", "unseen_acc")]
        out.append([p, ", ".join(f"{s}: {d:+.2f}" for s, d in diffs.items()), _ci_cell(iv),
                    "n/a" if math.isnan(iv.std) else f"{iv.std:.2f}", *cells,
                    f"{sum(d > 0 for d in diffs.values())}/{iv.n}"])
    return out


PAIRED_HEADER = ["preset", "per-seed difference to resnet (seed: points)", "mean [95 % CI]", "std",
                 "seen occluders: mean [95 % CI]", "unseen occluders: mean [95 % CI]", "seeds better"]


def _two(x: str) -> str:
    return f"{float(x):.2f}" if x not in ("", None) else "n/a"



def noise_statement(rows: Sequence[dict], preset: str = "full", baseline: str = "resnet") -> str:
    """One sentence on ``preset - baseline`` from the paired per-seed differences and their 95 %
    t-interval: a difference is called real only when the interval excludes zero."""
    diffs = paired_differences(rows, preset, baseline=baseline)
    iv = t_interval(list(diffs.values()))
    if iv.n < 2:
        return (f"{preset} - {baseline} = {iv.mean:+.2f} points from a single seed: no seed noise estimate, so "
                "this difference cannot be called an improvement or a loss.")
    head = (f"{preset} - {baseline}, paired over {iv.n} seeds: mean {iv.mean:+.2f} points, 95 % CI "
            f"[{iv.lo:+.2f}, {iv.hi:+.2f}] (t-interval, per-seed std {iv.std:.2f}): ")
    if iv.lo > 0:
        return head + f"{preset} is better than {baseline} beyond the seed noise."
    if iv.hi < 0:
        return head + f"{preset} is worse than {baseline} beyond the seed noise."
    return head + "the interval contains zero, so the difference is within the seed noise (not significant)."


def paper_row(preset: str) -> float | None:
    """The paper's RAF-DB figure for a preset (Table 1)."""
    return PAPER_TABLE1.get(preset, {}).get("rafdb")
