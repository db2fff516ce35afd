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
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from . import metrics
from .config import METHOD_PRESETS
from .ablation_report import noise_statement, paper_row, write_results_md  # noqa: F401 (public here too)
from .report import EVAL_JSON, pct, write_text

PRESETS: tuple[str, ...] = tuple(METHOD_PRESETS)  # the Table-1 rows, baseline first
RESULT_COLUMNS = ("preset", "seed", "occluded_acc", "clean_acc", "teacher_acc", "seen_acc", "unseen_acc",
                  "n_seen", "n_unseen", "n_test", "rec_mse", "train_s", "checkpoint")
PAIR_PRESETS: tuple[str, ...] = ("resnet", "full")  # the only rows run on the extra --pair-seeds
# the demo pairs: 20 % of train -> val (for checkpoint curves and choices), 30 % of each category's
# templates held out of train/val for the unseen-occluder half of test
DEMO_VAL_FRACTION = 0.2
DEMO_HOLDOUT_TEMPLATES = 0.3
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


def generate_pairs(**options: Any) -> Path:
    """The one call into occlusion_synth's generation API; returns the pairs' ``manifest.csv``.

    ``options`` are the generation config's fields (``src``, ``root``, ``out``, ``seed``,
    ``landmarks`` ...). An existing complete output is resumed (nothing regenerated).
    """
    from occlusion_synth.pairs import PairsConfig
    from occlusion_synth.pairs import generate_pairs as run_generation

    run_generation(PairsConfig(**options), command="fer-pi ablate (demo pairs)")
    return Path(options["out"]) / "manifest.csv"


def build_demo_pairs(out_dir: str | os.PathLike, seed: int = 0, quick: bool = False,
                     log: Callable[[str], None] = _log_default) -> Path:
    """The embedded demo dataset (``OUT/demo``) and its generated pairs (``OUT/pairs``).

    The same as ``occsynth demo-data OUT/demo`` then ``occsynth generate --src rafdb --root
    OUT/demo --out OUT/pairs --landmarks aligned --val-fraction 0.2 --holdout-templates 0.3``,
    through the Python API. What already exists is
    reused (generation resumes). Returns the pairs' ``manifest.csv``.
    """
    from occlusion_synth.demodata import build_demo_dataset

    out = Path(out_dir)
    demo, pairs = out / "demo", out / "pairs"
    if not (demo / "EmoLabel" / "list_patition_label.txt").is_file():
        sizes = dict(per_class=3, test_per_class=2) if quick else {}
        log(f"demo data -> {demo} (seed {seed}{', 3 train + 2 test faces per class' if quick else ''})")
        build_demo_dataset(demo, seed=seed, **sizes)
    manifest = pairs / "manifest.csv"
    if not manifest.is_file():
        # demo faces are aligned crops: the 68-point predictor on the whole frame (as make demo does)
        log(f"pairs -> {pairs} (rafdb reader, aligned landmarks, seed {seed})")
        generate_pairs(src="rafdb", root=str(demo), out=str(pairs), seed=seed, landmarks="aligned",
                       val_fraction=DEMO_VAL_FRACTION, holdout_templates=DEMO_HOLDOUT_TEMPLATES)
    return manifest


def pretrain_run(cfg, run_dir: Path, progress: bool = False) -> tuple[Path, Path]:
    """Phase 1 into ``run_dir`` unless its exports exist; returns ``(teacher.pt, student.pt)``.

    Existing exports are reused only when made from the same data, arch and seed
    (:func:`fer_pi.runs.check_pretraining`).
    """
    from .runs import check_pretraining, launch

    teacher, student = run_dir / "teacher.pt", run_dir / "student.pt"
    if teacher.is_file() and student.is_file():
        check_pretraining(student, cfg)
    else:
        resume = (run_dir / "last.pt").is_file()  # else: leftovers of a run stopped in its first epoch
        launch("pretrain", cfg, run_dir, resume=resume, overwrite=not resume, progress=progress)
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
                 pair_seeds: Sequence[int] = (), report_only: bool = False,
                 overrides: dict[str, Any] | None = None, set_items: Sequence[str] = (),
                 device: str = "auto", command: str = "", log: Callable[[str], None] = _log_default,
                 jobs: int = 1, collect: bool = True) -> dict:
    """Pre-train once per seed, fine-tune every preset from it, evaluate on the occluded test split.

    Args:
        out_dir: the ablation folder.
        manifest: ``manifest.csv`` of ``occsynth generate`` with train and test splits.
        seeds: one full repetition (pre-training + all presets) per seed.
        presets: Table-1 rows to run (``resnet`` is the baseline).
        size_preset: :data:`fer_pi.config.SIZE_PRESETS` name.
        quick: tiny net, 32 px, one epoch per phase (pipeline check).
        pair_seeds: further seeds on which only :data:`PAIR_PRESETS` (baseline and full) run,
            for a tighter baseline-vs-full comparison.
        report_only: train nothing: collect the runs already evaluated into the results (what is
            not finished is left out and logged).
        overrides: config fields to set (e.g. ``{"epochs": 2}``), applied after the presets.
        set_items: ``key=value`` overrides as on the command line.
        command: the command line, recorded in ``results.md``.
        jobs: seeds trained at the same time, each in its own process (CPU: one core each with
            the demo preset's one torch thread); the tables are written once all have finished.
        collect: write results.csv/results.md at the end (the parallel jobs do not).

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
    if jobs > 1 and not report_only:
        _run_jobs(jobs, out, manifest, seeds, pair_seeds, presets, size_preset, quick, overrides,
                  set_items, device, log)
        report_only = True  # every job is done: collect their evaluations
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
        write_text(path, json.dumps(res, indent=2) + "\n")
        return res

    plan = [(s, list(presets)) for s in seeds]
    plan += [(s, [p for p in presets if p in PAIR_PRESETS]) for s in pair_seeds if s not in seeds]
    for seed, seed_presets in plan:
        base = _seed_config(manifest, seed, size_preset, quick, overrides or {}, set_items)
        base.device = device
        config_used = base.to_dict()
        seed_dir = out / f"seed{seed}"
        pre_dir = seed_dir / "pretrain"
        t0 = time.perf_counter()
        if report_only:
            if not (pre_dir / "eval" / EVAL_JSON).is_file():
                log(f"[seed {seed}] not pre-trained yet: left out (report only)")
                continue
            teacher_ckpt, student_ckpt = pre_dir / "teacher.pt", pre_dir / "student.pt"
        else:
            log(f"[seed {seed}] pretraining ({base.arch}, {base.image_size} px, "
                f"{base.pretrain_epochs} epochs) -> {pre_dir}")
            teacher_ckpt, student_ckpt = pretrain_run(base, pre_dir)
        pre_s = time.perf_counter() - t0
        res = score(student_ckpt, pre_dir / "eval")
        evals[("pretrain", seed)] = res
        rows.append(_row("pretrain", seed, res, pre_s, student_ckpt))
        log(f"[seed {seed}] pretrained student: occluded {pct(res['accuracy'])}% "
            f"(clean {pct((res.get('clean') or {}).get('accuracy'))}%) in {pre_s:.0f}s")
        for preset in seed_presets:
            run_dir = seed_dir / preset
            cfg = base.replace(teacher=str(teacher_ckpt), student=str(student_ckpt))
            cfg.set_method(preset)
            t0 = time.perf_counter()
            done = (run_dir / "eval" / EVAL_JSON).is_file()
            if report_only and not done:
                log(f"[seed {seed}] {preset}: not finished, left out (report only)")
                continue
            # evaluated: its evaluation.json is what counts (the checkpoints may have been deleted)
            ckpt = run_dir / "last.pt" if done else finetune_run(cfg, run_dir)
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
    if not collect:
        return {"rows": rows, "summary": summary, "results_csv": None, "results_md": None, "wall_s": wall}
    md = write_results_md(out, summary, rows, evals, config=config_used or {},
                          seeds=list(dict.fromkeys(int(r["seed"]) for r in rows)),
                          manifest=manifest, command=command, wall_s=wall, quick=quick)
    return {"rows": rows, "summary": summary, "results_csv": out / "results.csv", "results_md": md, "wall_s": wall}


def _job(kwargs: dict) -> None:
    """One parallel job of :func:`run_ablation` (a spawned process): its seeds, no tables."""
    run_ablation(**kwargs, jobs=1, collect=False)


def split_plan(seeds: Sequence[int], pair_seeds: Sequence[int], presets: Sequence[str],
               jobs: int) -> list[tuple[list[int], list[int]]]:
    """Share the seeds among ``jobs`` (longest first onto the least loaded job: a seed costs one
    pre-training plus one fine-tuning per preset it runs). Returns ``[(seeds, pair_seeds), ...]``
    without empty jobs."""
    n_pair = sum(p in PAIR_PRESETS for p in presets)
    work = [(2 + len(presets), s, False) for s in seeds]
    work += [(2 + n_pair, s, True) for s in pair_seeds if s not in seeds and n_pair]
    load = [0] * max(1, jobs)
    parts: list[tuple[list[int], list[int]]] = [([], []) for _ in load]
    for cost, seed, pair in sorted(work, key=lambda w: -w[0]):
        j = load.index(min(load))
        load[j] += cost
        parts[j][1 if pair else 0].append(seed)
    return [p for p in parts if p[0] or p[1]]


def _run_jobs(jobs: int, out: Path, manifest: Path, seeds, pair_seeds, presets, size_preset, quick,
              overrides, set_items, device, log) -> None:
    """Train the seeds in ``jobs`` spawned processes; raise when one of them fails."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    procs = []
    for job_seeds, job_pairs in split_plan(seeds, pair_seeds, presets, jobs):
        kwargs = dict(out_dir=str(out), manifest=str(manifest), seeds=job_seeds, pair_seeds=job_pairs,
                      presets=list(presets), size_preset=size_preset, quick=quick,
                      overrides=dict(overrides or {}), set_items=list(set_items), device=device)
        log(f"[job {len(procs)}] seeds {job_seeds}" + (f", pair seeds {job_pairs}" if job_pairs else ""))
        proc = ctx.Process(target=_job, args=(kwargs,), name=f"ablate-job{len(procs)}")
        proc.start()
        procs.append((proc, job_seeds + job_pairs))
    try:
        for proc, _ in procs:
            proc.join()
    finally:
        for proc, _ in procs:
            if proc.is_alive():
                proc.terminate()
    failed = [s for proc, ss in procs if proc.exitcode != 0 for s in ss]
    if failed:
        from .errors import FerPiError

        raise FerPiError(f"the ablation job of seed(s) {', '.join(map(str, failed))} failed (its error is "
                         "printed above); finished runs are kept: re-run the same command to resume")


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
    sets = res.get("per_template_set") or {}
    train_s = _summary_time(Path(ckpt).parent) or train_s
    return {"preset": preset, "seed": seed, "occluded_acc": _pct_num(res.get("accuracy")),
            "clean_acc": _pct_num(clean), "teacher_acc": _pct_num((res.get("teacher") or {}).get("accuracy")),
            "seen_acc": _pct_num((sets.get("seen") or {}).get("accuracy")),
            "unseen_acc": _pct_num((sets.get("unseen") or {}).get("accuracy")),
            "n_seen": (sets.get("seen") or {}).get("n", ""), "n_unseen": (sets.get("unseen") or {}).get("n", ""),
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
    """Mean and sample std over seeds of occluded and clean accuracy (%), per preset, in row order;
    mean teacher, seen-occluder and unseen-occluder accuracy (``nan`` when absent)."""
    order = list(dict.fromkeys(r["preset"] for r in rows))
    out = []
    for p in order:
        sel = [r for r in rows if r["preset"] == p]
        mean, std, n = metrics.mean_std(float(r["occluded_acc"]) for r in sel if r["occluded_acc"] != "")
        cmean, cstd, _ = metrics.mean_std(float(r["clean_acc"]) for r in sel if r["clean_acc"] != "")
        extra = {f"{k}_mean": metrics.mean_std(float(r[f"{k}_acc"]) for r in sel
                                               if r.get(f"{k}_acc", "") != "")[0] for k in ("teacher", "seen", "unseen")}
        out.append({"preset": p, "mean": mean, "std": std, "n": n, "clean_mean": cmean, "clean_std": cstd,
                    **extra,
                    "per_seed": [float(r["occluded_acc"]) for r in sel if r["occluded_acc"] != ""]})
    return out
