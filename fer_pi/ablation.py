"""The Table-1 ablation: one shared pre-training per seed, the eight presets fine-tuned from it.

Layout of ``OUT`` (``fer-pi ablate --out OUT``)::

    OUT/data/...                         demo data and generated pairs (when built here)
    OUT/seed{S}/pretrain/                pre-training run (teacher on clean, student on occluded)
    OUT/seed{S}/pretrain/eval/           the pre-trained student scored (reference row)
    OUT/seed{S}/{preset}/                fine-tuning run of one preset
    OUT/seed{S}/{preset}/eval/evaluation.json
    OUT/results.csv                      one row per (preset, seed)
    OUT/results_groups.csv               accuracy per occluder category / coverage bin per (preset, seed)
    OUT/results.md                       mean and std per preset next to the paper's Table 1
    OUT/robustness_category.png, OUT/robustness_coverage.png   baseline vs full

Model selection never looks at the test split: every preset is evaluated at its final epoch with
the hyper-parameters fixed by the presets. A finished (seed, preset) is detected by its
``evaluation.json`` and not re-run, so an interrupted ablation resumes where it stopped.
"""
from __future__ import annotations

import csv
import json
import math
import os
import platform
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from . import metrics
from .report import EVAL_JSON, PAPER_TABLE1, _table, _write_text, ablation_markdown, pct, robustness_markdown

PRESETS: tuple[str, ...] = ("resnet", "sim", "lir", "sim_lir", "adv", "rec", "adv_rec", "full")
RESULT_COLUMNS = ("preset", "seed", "occluded_acc", "clean_acc", "teacher_acc", "n_test", "rec_mse", "train_s",
                  "checkpoint")
GROUP_COLUMNS = ("preset", "seed", "kind", "group", "accuracy", "n")
# --quick: a CI-sized check of the whole pipeline (not a measurement).
QUICK_OVERRIDES: dict[str, Any] = dict(arch="tiny", weights="none", image_size=32, pretrain_epochs=1,
                                       epochs=1, batch_size=8, num_workers=0)


def _log_default(msg: str) -> None:
    print(msg, flush=True)


def _seed_config(manifest: Path, seed: int, size_preset: str, quick: bool, overrides: dict[str, Any],
                 set_items: Sequence[str]):
    from .config import TrainConfig

    values = dict(QUICK_OVERRIDES) if quick else {}
    values.update(overrides)
    cfg = TrainConfig.from_preset("resnet", size_preset, data=str(manifest), seed=int(seed), **values)
    if set_items:
        cfg.apply_overrides(list(set_items))
    if cfg.val_split == "auto":
        # "auto" may fall back to the test split for validation; the ablation must not look at it.
        from .data import manifest_splits

        cfg.val_split = "val" if "val" in manifest_splits(manifest) else "none"
    return cfg


def pretrain_run(cfg, run_dir: Path, progress: bool = False) -> tuple[Path, Path]:
    """Phase 1 into ``run_dir`` unless its exports exist; returns ``(teacher.pt, student.pt)``."""
    from .engine import pretrain

    teacher, student = run_dir / "teacher.pt", run_dir / "student.pt"
    if not (teacher.is_file() and student.is_file()):
        pretrain(cfg, run_dir, resume=(run_dir / "last.pt").is_file(), progress=progress)
    return teacher, student


def finetune_run(cfg, run_dir: Path, skip_if_done: bool = False, progress: bool = False) -> Path:
    """Phase 2 into ``run_dir``; returns the final-epoch checkpoint ``last.pt`` (never the
    validation-selected ``best.pt``, so that no choice depends on held-out data)."""
    from .checkpoint import load_checkpoint
    from .engine import finetune

    last = run_dir / "last.pt"
    if skip_if_done and last.is_file():
        return last
    resume = False
    if last.is_file():
        if int(load_checkpoint(last).get("epoch", 0)) >= cfg.epochs:
            return last
        resume = True
    finetune(cfg, run_dir, resume=resume, progress=progress)
    return last


def run_ablation(out_dir: str | os.PathLike, manifest: str | os.PathLike, seeds: Sequence[int] = (0, 1, 2),
                 presets: Sequence[str] = PRESETS, size_preset: str = "demo", quick: bool = False,
                 overrides: dict[str, Any] | None = None, set_items: Sequence[str] = (),
                 device: str = "auto", command: str = "", log: Callable[[str], None] = _log_default) -> dict:
    """Pre-train once per seed, fine-tune every preset from it, evaluate on the occluded test split.

    Args:
        out_dir: the ablation folder.
        manifest: ``manifest.csv`` of ``occsynth generate`` with train and test splits.
        seeds: one full repetition (pre-training + all presets) per seed.
        presets: Table-1 rows to run (``resnet`` is the baseline).
        size_preset: :data:`fer_pi.config.SIZE_PRESETS` name.
        quick: tiny net, 32 px, one epoch per phase (pipeline check).
        overrides: config fields to set (e.g. ``{"epochs": 2}``), applied after the presets.
        set_items: ``key=value`` overrides as on the command line.
        command: the command line, recorded in ``results.md``.

    Returns:
        ``{"rows": [...], "summary": [...], "results_csv", "results_md", "wall_s"}``.
    """
    from .evaluation import evaluate_checkpoint, strip_examples

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    manifest = Path(manifest)
    unknown = [p for p in presets if p not in PRESETS]
    if unknown:
        from .errors import FerPiError

        raise FerPiError(f"--presets: unknown preset(s) {', '.join(unknown)}; valid: {', '.join(PRESETS)}")
    t_start = time.perf_counter()
    rows: list[dict] = []
    groups: list[dict] = []
    evals: dict[tuple[str, int], dict] = {}
    config_used: dict | None = None

    def score(ckpt: Path, eval_dir: Path) -> dict:
        path = eval_dir / EVAL_JSON
        if path.is_file():
            return json.loads(path.read_text())
        res = strip_examples(evaluate_checkpoint(ckpt, manifest, split=base.test_split, device=device,
                                                 batch_size=max(32, base.batch_size)))
        eval_dir.mkdir(parents=True, exist_ok=True)
        _write_text(path, json.dumps(res, indent=2) + "\n")
        return res

    for seed in seeds:
        base = _seed_config(manifest, seed, size_preset, quick, overrides or {}, set_items)
        base.device = device
        config_used = base.to_dict()
        seed_dir = out / f"seed{seed}"
        pre_dir = seed_dir / "pretrain"
        t0 = time.perf_counter()
        log(f"[seed {seed}] pretraining ({base.arch}, {base.image_size} px, "
            f"{base.pretrain_epochs} epochs) -> {pre_dir}")
        teacher_ckpt, student_ckpt = pretrain_run(base, pre_dir)
        pre_s = time.perf_counter() - t0
        res = score(student_ckpt, pre_dir / "eval")
        evals[("pretrain", seed)] = res
        rows.append(_row("pretrain", seed, res, pre_s, student_ckpt))
        log(f"[seed {seed}] pretrained student: occluded {pct(res['accuracy'])}% "
            f"(clean {pct((res.get('clean') or {}).get('accuracy'))}%) in {pre_s:.0f}s")
        for preset in presets:
            run_dir = seed_dir / preset
            cfg = base.replace(teacher=str(teacher_ckpt), student=str(student_ckpt))
            cfg.set_method(preset)
            t0 = time.perf_counter()
            done = (run_dir / "eval" / EVAL_JSON).is_file()
            ckpt = finetune_run(cfg, run_dir, skip_if_done=done)
            train_s = time.perf_counter() - t0
            res = score(ckpt, run_dir / "eval")
            evals[(preset, seed)] = res
            rows.append(_row(preset, seed, res, train_s, ckpt))
            groups.extend(_group_rows(preset, seed, res))
            log(f"[seed {seed}] {preset:8s} occluded {pct(res['accuracy'])}%  "
                f"clean {pct((res.get('clean') or {}).get('accuracy'))}%  ({train_s:.0f}s)")
            _write_csv(out / "results.csv", RESULT_COLUMNS, rows)  # partial results survive a crash
            _write_csv(out / "results_groups.csv", GROUP_COLUMNS, groups)
    wall = time.perf_counter() - t_start
    summary = summarize(rows)
    md = write_results_md(out, summary, rows, evals, config=config_used or {}, seeds=list(seeds),
                          manifest=manifest, command=command, wall_s=wall, quick=quick)
    return {"rows": rows, "summary": summary, "results_csv": out / "results.csv", "results_md": md, "wall_s": wall}


def _summary_time(run_dir: Path) -> float | None:
    """Sum of the epoch times in a run's summary.csv (the training time, also after a resume)."""
    path = run_dir / "summary.csv"
    if not path.is_file():
        return None
    with open(path, newline="", encoding="utf-8") as fh:
        times = [float(r["time_s"]) for r in csv.DictReader(fh) if r.get("time_s")]
    return sum(times) if times else None


def _row(preset: str, seed: int, res: dict, train_s: float, ckpt: Path) -> dict:
    clean = (res.get("clean") or {}).get("accuracy")
    train_s = _summary_time(Path(ckpt).parent) or train_s
    return {"preset": preset, "seed": seed, "occluded_acc": _pct_num(res.get("accuracy")),
            "clean_acc": _pct_num(clean), "teacher_acc": _pct_num((res.get("teacher") or {}).get("accuracy")),
            "n_test": res.get("n"),
            "rec_mse": "" if res.get("rec_mse") is None else f"{res['rec_mse']:.6f}",
            "train_s": f"{train_s:.1f}", "checkpoint": str(ckpt)}


def _pct_num(x: float | None) -> str:
    return "" if x is None else f"{100.0 * x:.4f}"


def _group_rows(preset: str, seed: int, res: dict) -> list[dict]:
    out = []
    for kind, key in (("category", "per_category"), ("coverage", "per_coverage_bin")):
        for g, v in (res.get(key) or {}).items():
            out.append({"preset": preset, "seed": seed, "kind": kind, "group": g,
                        "accuracy": _pct_num(v.get("accuracy")), "n": v.get("n")})
    return out


def _write_csv(path: Path, columns: Sequence[str], rows: list[dict]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(columns))
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, path)


def summarize(rows: Sequence[dict]) -> list[dict]:
    """Mean and sample std over seeds of occluded and clean accuracy (%), per preset, in row order."""
    order = list(dict.fromkeys(r["preset"] for r in rows))
    out = []
    for p in order:
        sel = [r for r in rows if r["preset"] == p]
        mean, std, n = metrics.mean_std(float(r["occluded_acc"]) for r in sel if r["occluded_acc"] != "")
        cmean, cstd, _ = metrics.mean_std(float(r["clean_acc"]) for r in sel if r["clean_acc"] != "")
        tmean, _, _ = metrics.mean_std(float(r["teacher_acc"]) for r in sel if r.get("teacher_acc", "") != "")
        out.append({"preset": p, "mean": mean, "std": std, "n": n, "clean_mean": cmean, "clean_std": cstd,
                    "teacher_mean": tmean,
                    "per_seed": [float(r["occluded_acc"]) for r in sel if r["occluded_acc"] != ""]})
    return out


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
        lines.append("\n" + noise_statement(by["resnet"], by["full"]) + "\n")
    paired = _paired_rows(rows, [s["preset"] for s in table_rows])
    if paired:
        lines.append("\nPaired differences to `resnet` (each seed's presets share one pre-training and the "
                     "same test images, so the per-seed difference removes the pre-training luck):\n\n")
        lines.append(_table(["preset", "per-seed difference to resnet (points)", "mean", "std", "seeds better"],
                            paired))
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
    lines.append(_table(["preset", "seed", "occluded acc (%)", "clean acc (%)", "n test", "time (s)"],
                        [[r["preset"], r["seed"], _two(r["occluded_acc"]), _two(r["clean_acc"]), r["n_test"],
                          r["train_s"]] for r in rows]))
    path = out / "results.md"
    _write_text(path, "".join(lines))
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


def _paired_rows(rows: Sequence[dict], presets: Sequence[str]) -> list[list[str]]:
    base = {r["seed"]: float(r["occluded_acc"]) for r in rows if r["preset"] == "resnet" and r["occluded_acc"]}
    out = []
    for p in presets:
        if p == "resnet":
            continue
        diffs = [float(r["occluded_acc"]) - base[r["seed"]] for r in rows
                 if r["preset"] == p and r["occluded_acc"] and r["seed"] in base]
        if not diffs:
            continue
        mean, std, n = metrics.mean_std(diffs)
        out.append([p, ", ".join(f"{d:+.2f}" for d in diffs), f"{mean:+.2f}",
                    "n/a" if math.isnan(std) else f"{std:.2f}", f"{sum(d > 0 for d in diffs)}/{n}"])
    return out


def _two(x: str) -> str:
    return f"{float(x):.2f}" if x not in ("", None) else "n/a"


def noise_statement(base: dict, full: dict) -> str:
    """One sentence comparing full vs resnet with the seed noise (no claim beyond what it supports)."""
    diff = full["mean"] - base["mean"]
    stds = [s for s in (base["std"], full["std"]) if not math.isnan(s)]
    if len(stds) < 2:
        return (f"full - resnet = {diff:+.2f} points from a single seed: no seed noise estimate, so this "
                "difference cannot be called an improvement or a loss.")
    se = math.sqrt(base["std"] ** 2 / base["n"] + full["std"] ** 2 / full["n"])
    verdict = ("larger than" if abs(diff) > 2 * se else "within")
    return (f"full - resnet = {diff:+.2f} points; seed std resnet {base['std']:.2f}, full {full['std']:.2f} "
            f"(standard error of the difference {se:.2f}): the difference is {verdict} two standard errors"
            + (" (not significant)." if verdict == "within" else "."))


def paper_row(preset: str) -> float | None:
    """The paper's RAF-DB figure for a preset (Table 1)."""
    return PAPER_TABLE1.get(preset, {}).get("rafdb")
