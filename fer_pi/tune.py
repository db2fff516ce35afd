"""``fer-pi tune``: an Optuna search of the lambdas, learning rates and K1/K2 on the **val** split.

One pre-training (teacher on clean, student on occluded) is shared by every trial; each trial
fine-tunes the pretrained student with sampled hyper-parameters and reports the occluded val
accuracy after every epoch to Optuna (so a pruner can stop hopeless trials early). The trial's
value is its best per-epoch val accuracy, the epoch ``best.pt`` would keep. The test split is never
read.

The study lives in an Optuna storage (``sqlite:///OUT/study.db`` by default): re-running the same
command resumes it, running only the trials still missing; any Optuna database URL lets several
processes or machines share one study. Outputs in ``OUT``: ``trials.csv`` (one row per trial),
``search.png`` (the search at a glance), ``best_config.json`` (a full :class:`TrainConfig` that
``fer-pi train --config`` accepts) and ``study.json`` (best value, parameters, counts).
"""
from __future__ import annotations

import csv
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from .config import TrainConfig
from .errors import FerPiError
from .utils import log

SAMPLERS = ("tpe", "grid", "random")
PRUNERS = ("median", "none")


@dataclass(frozen=True)
class Param:
    """One searched field of :class:`TrainConfig`.

    ``low``/``high`` bound the continuous search (log scale for floats, integers for ``int``);
    ``grid`` are the values the grid sampler tries.
    """

    kind: str           # "log" (float, log-uniform) | "int"
    low: float
    high: float
    grid: tuple[float, ...]
    needs: str = ""     # the use_* switch the parameter matters for ("" = always)


#: The search space (``--params`` selects a subset). Lambdas span four decades around the point
#: where each term is as large as ``loss_cls`` (docs/results.md: rec 0.03, sim 0.1, adv 3).
SEARCH_SPACE: dict[str, Param] = {
    "lambda_sim": Param("log", 1e-2, 10.0, (0.1, 1.0, 10.0), "use_sim"),
    "lambda_ineq": Param("log", 1e-2, 10.0, (0.1, 1.0, 10.0), "use_ineq"),
    "lambda_adv": Param("log", 1e-3, 1.0, (0.003, 0.03, 0.3), "use_adv"),
    "lambda_rec": Param("log", 1e-1, 100.0, (1.0, 10.0), "use_rec"),
    "lr_student": Param("log", 1e-5, 3e-3, (2e-5, 2e-4, 1e-3)),
    "lr_disc": Param("log", 1e-6, 1e-3, (1e-5, 1e-4), "use_adv"),
    "lr_decoder": Param("log", 1e-4, 1e-2, (1e-3,), "use_rec"),
    "k1": Param("int", 1, 3, (1,), "use_adv"),
    "k2": Param("int", 1, 3, (1, 2), "use_adv"),
}


@dataclass
class TuneResult:
    """What :func:`tune` leaves behind (paths in the study folder) and the best trial."""

    out: Path
    storage: str
    study_name: str
    best_value: float
    best_params: dict[str, Any]
    best_trial: int
    n_complete: int
    n_pruned: int
    n_failed: int
    best_config: Path
    trials_csv: Path
    plot: Path


def active_params(cfg: TrainConfig, names: Sequence[str] | None = None) -> dict[str, Param]:
    """The parameters to search for ``cfg``'s method: those whose loss term is on (``names``
    restricts them further).

    Raises:
        FerPiError: unknown names, or none left to search.
    """
    if names:
        unknown = [n for n in names if n not in SEARCH_SPACE]
        if unknown:
            raise FerPiError(f"--params: unknown parameter(s) {', '.join(unknown)}; valid: "
                             f"{', '.join(SEARCH_SPACE)}")
    chosen = {n: p for n, p in SEARCH_SPACE.items()
              if (not names or n in names) and (not p.needs or getattr(cfg, p.needs))}
    if not chosen:
        raise FerPiError(f"--params: nothing to search for preset {cfg.method!r} "
                         f"(its loss terms do not use {', '.join(names or [])})")
    return chosen


def suggest(trial: Any, space: dict[str, Param]) -> dict[str, Any]:
    """Draw one value per parameter from an Optuna trial."""
    out: dict[str, Any] = {}
    for name, p in space.items():
        if p.kind == "int":
            out[name] = trial.suggest_int(name, int(p.low), int(p.high))
        else:
            out[name] = trial.suggest_float(name, p.low, p.high, log=True)
    return out


def default_storage(out: Path) -> str:
    """``sqlite:///OUT/study.db`` (absolute path)."""
    return f"sqlite:///{(Path(out) / 'study.db').resolve()}"


def _sampler(kind: str, space: dict[str, Param], seed: int):
    import optuna

    if kind == "tpe":
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=4)
    if kind == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if kind == "grid":
        grid = {n: [int(v) if p.kind == "int" else float(v) for v in p.grid] for n, p in space.items()}
        return optuna.samplers.GridSampler(grid, seed=seed)
    raise FerPiError(f"--sampler {kind!r}: must be one of {', '.join(SAMPLERS)}")


def _storage(url: str):
    import optuna

    if url.startswith(("sqlite:", "postgresql", "mysql")):
        import warnings

        # heartbeats let a resumed or parallel study fail trials whose process was killed
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(url, heartbeat_interval=30, grace_period=90)
    return url


def _pretrained(base: TrainConfig, out: Path, progress: bool) -> TrainConfig:
    """Teacher and student for every trial: the given ones, or one pre-training in ``OUT/pretrain``."""
    if base.teacher and base.student:
        return base
    from .engine import pretrain

    pre = out / "pretrain"
    if not (pre / "student.pt").is_file():
        log.info(f"tune: pre-training teacher and student once -> {pre}")
        pretrain(base, pre, resume=(pre / "last.pt").is_file(), progress=progress)
    return base.replace(teacher=base.teacher or str(pre / "teacher.pt"),
                        student=base.student or str(pre / "student.pt"))


def tune(base: TrainConfig, out: str | Path, sampler: str = "tpe", trials: int = 20,
         timeout: float | None = None, storage: str | None = None, study_name: str = "fer-pi-tune",
         params: Sequence[str] | None = None, pruner: str = "median", keep_checkpoints: bool = False,
         progress: bool = False, finetune_fn: Callable | None = None) -> TuneResult:
    """Run (or resume) a study maximising the occluded val accuracy of the fine-tuned student.

    Args:
        base: the config every trial starts from (data, method, size, epochs, seed...); its
            ``teacher``/``student`` are used when both are set, else one pre-training is made.
        out: study folder (``study.db``, ``pretrain/``, ``trials/NNNN/``, outputs).
        sampler: ``tpe`` | ``grid`` | ``random`` (seeded with ``base.seed``).
        trials: total finished (complete or pruned) trials wanted; a resumed study runs only the
            missing ones.
        timeout: stop starting new trials after this many seconds (None: no limit).
        storage: Optuna storage URL (default :func:`default_storage`).
        params: names of :data:`SEARCH_SPACE` to search (default: all that the method uses).
        pruner: ``median`` (Optuna's MedianPruner on per-epoch val accuracy) or ``none``.
        keep_checkpoints: keep each trial's ``last.pt``/``best.pt`` (deleted by default: the
            best trial is re-trained from ``best_config.json``).
        finetune_fn: the fine-tuning function (default :func:`fer_pi.engine.finetune`).

    Raises:
        FerPiError: no val split in the data, bad sampler/pruner/params.
    """
    import optuna

    from .engine import finetune, resolve_val_split

    out = Path(out)
    if trials < 1:
        raise FerPiError("--trials must be >= 1")
    if pruner not in PRUNERS:
        raise FerPiError(f"--pruner {pruner!r}: must be one of {', '.join(PRUNERS)}")
    val = resolve_val_split(base)
    if val is None or val == base.test_split:
        raise FerPiError(f"{base.data}: no 'val' split to tune on (the test split is never used for "
                         "choices); make one with `occsynth generate --val-fraction 0.2`")
    space = active_params(base, params)
    out.mkdir(parents=True, exist_ok=True)
    storage = storage or default_storage(out)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name=study_name, storage=_storage(storage), direction="maximize", load_if_exists=True,
        # no pruning in the first half of a trial: one epoch's val accuracy is noisy on a small split
        pruner=(optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=max(1, base.epochs // 2))
                if pruner == "median" else optuna.pruners.NopPruner()))
    # seeded, but offset by the trials already in the study: a resumed run or a second worker on a
    # shared storage does not replay the first worker's draws
    study.sampler = _sampler(sampler, space, base.seed * 100_003 + len(study.trials))
    done = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    remaining = trials - len(study.get_trials(deepcopy=False, states=done))
    cfg0 = _pretrained(base, out, progress) if remaining > 0 else base
    run = finetune_fn or finetune

    def objective(trial: Any) -> float:
        values = suggest(trial, space)
        cfg = cfg0.replace(**values)
        trial_dir = out / "trials" / f"{trial.number:04d}"
        best = -math.inf

        def report(epoch: int, row: dict) -> None:
            nonlocal best
            acc = float(row.get("val_acc", math.nan))
            best = max(best, acc) if acc == acc else best
            for key in ("val_acc_teacher", "val_acc_clean", "val_psnr", "loss_disc", "loss_adv"):
                if isinstance(row.get(key), float) and row[key] == row[key]:
                    trial.set_user_attr(key, row[key])
            trial.set_user_attr("epochs_run", epoch)
            trial.report(acc, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(f"val_acc {acc:.4f} at epoch {epoch}")

        t0 = time.perf_counter()
        try:
            run(cfg, trial_dir, progress=progress, on_epoch=report)
        finally:
            trial.set_user_attr("time_s", round(time.perf_counter() - t0, 1))
            if not keep_checkpoints:
                for name in ("last.pt", "best.pt"):
                    (trial_dir / name).unlink(missing_ok=True)
        trial.set_user_attr("best_val_acc", best)
        log.info(f"tune: trial {trial.number} val_acc {best:.4f} {values}")
        return best

    if remaining > 0:
        callbacks = [optuna.study.MaxTrialsCallback(trials, states=done)]
        study.optimize(objective, n_trials=remaining, timeout=timeout, callbacks=callbacks,
                       gc_after_trial=True)
    return _write_outputs(study, base, space, out, storage, study_name)


def _write_outputs(study: Any, base: TrainConfig, space: dict[str, Param], out: Path, storage: str,
                   study_name: str) -> TuneResult:
    import optuna

    from occlusion_synth.io import atomic_write_bytes

    S = optuna.trial.TrialState
    all_trials = study.get_trials(deepcopy=False)
    complete = [t for t in all_trials if t.state == S.COMPLETE]
    if not complete:
        raise FerPiError(f"{out}: the study has no complete trial yet (all pruned or failed); run more --trials")
    best = study.best_trial
    trials_csv = out / "trials.csv"
    _write_trials_csv(all_trials, list(space), trials_csv)
    plot = plot_search(all_trials, list(space), out / "search.png")
    cfg = base.replace(**best.params, teacher="", student="")
    best_config = out / "best_config.json"
    cfg.save(best_config)
    summary = {"study_name": study_name, "storage": storage, "direction": "maximize",
               "objective": "best per-epoch occluded accuracy on the val split",
               "best_trial": best.number, "best_value": best.value, "best_params": best.params,
               "best_user_attrs": best.user_attrs,
               "n_complete": len(complete), "n_pruned": sum(t.state == S.PRUNED for t in all_trials),
               "n_failed": sum(t.state == S.FAIL for t in all_trials),
               "searched": {n: {"kind": p.kind, "low": p.low, "high": p.high} for n, p in space.items()}}
    atomic_write_bytes(out / "study.json", (json.dumps(summary, indent=2, default=str) + "\n").encode())
    return TuneResult(out, storage, study_name, float(best.value), dict(best.params), best.number,
                      summary["n_complete"], summary["n_pruned"], summary["n_failed"], best_config,
                      trials_csv, plot)


def _write_trials_csv(trials: Sequence[Any], names: list[str], path: Path) -> None:
    from occlusion_synth.io import atomic_write_bytes
    import io

    attrs = ("val_acc_teacher", "val_acc_clean", "val_psnr", "loss_disc", "loss_adv", "epochs_run", "time_s")
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["number", "state", "value"] + names + list(attrs))
    for t in trials:
        w.writerow([t.number, t.state.name, "" if t.value is None else f"{t.value:.6g}"]
                   + [_fmt(t.params.get(n)) for n in names] + [_fmt(t.user_attrs.get(a)) for a in attrs])
    atomic_write_bytes(path, buf.getvalue().encode())


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    return f"{v:.6g}" if isinstance(v, float) else str(v)


def plot_search(trials: Sequence[Any], names: list[str], out_png: str | Path) -> Path:
    """The search at a glance: val accuracy per trial (best so far as a line; pruned trials at their
    last reported value, hollow), and val accuracy against each searched parameter (log axes)."""
    from .plots import _pyplot, _save

    plt = _pyplot()
    vals = []
    for t in trials:
        last = t.intermediate_values[max(t.intermediate_values)] if t.intermediate_values else None
        vals.append((t.number, t.value if t.value is not None else last, t.state.name))
    n = len(names) + 1
    cols = min(n, 4)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 3.0 * rows), squeeze=False)
    ax = axes[0][0]
    done = [(k, v) for k, v, s in vals if s == "COMPLETE" and v is not None]
    pruned = [(k, v) for k, v, s in vals if s == "PRUNED" and v is not None]
    if done:
        ax.scatter(*zip(*done), color="tab:blue", label="complete", zorder=3)
        best, line = -math.inf, []
        for k, v in sorted(done):
            best = max(best, v)
            line.append((k, best))
        ax.step(*zip(*line), where="post", color="tab:blue", alpha=0.6, label="best so far")
    if pruned:
        ax.scatter(*zip(*pruned), facecolors="none", edgecolors="tab:red", label="pruned", zorder=3)
    ax.set_xlabel("trial")
    ax.set_ylabel("val accuracy (occluded)")
    ax.set_title("search")
    ax.legend(fontsize=7)
    for i, name in enumerate(names, start=1):
        a = axes[i // cols][i % cols]
        pts = [(t.params[name], v) for t, (_, v, s) in zip(trials, vals)
               if name in t.params and v is not None and s in ("COMPLETE", "PRUNED")]
        colors = ["tab:blue" if s == "COMPLETE" else "tab:red" for t, (_, v, s) in zip(trials, vals)
                  if name in t.params and v is not None and s in ("COMPLETE", "PRUNED")]
        if pts:
            a.scatter(*zip(*pts), c=colors, s=18)
        if SEARCH_SPACE[name].kind == "log":
            a.set_xscale("log")
        a.set_xlabel(name)
        a.set_ylabel("val acc")
    for j in range(n, rows * cols):
        axes[j // cols][j % cols].axis("off")
    fig.tight_layout()
    return _save(fig, out_png)


__all__ = ["PRUNERS", "Param", "SAMPLERS", "SEARCH_SPACE", "TuneResult", "active_params", "default_storage",
           "plot_search", "suggest", "tune"]
