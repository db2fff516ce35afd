"""``fer-pi tune``: Optuna search of lambdas, learning rates and K1/K2 on the val split."""
from __future__ import annotations

import csv
from pathlib import Path

import click

from ..config import METHOD_PRESETS, SIZE_PRESETS

#: --quick: a tiny net on a few images per class, two short trials (a CI check, numbers mean nothing).
QUICK = dict(arch="tiny", weights="none", image_size=32, batch_size=8, pretrain_epochs=1, epochs=2,
             lr_pretrain=1e-3, lr_teacher=1e-3, num_workers=0, threads=1)
QUICK_PER_CLASS = 3


def quick_subset(manifest: Path, out: Path, per_class: int = QUICK_PER_CLASS) -> Path:
    """At most ``per_class`` rows per (split, label) of ``manifest``, written to ``out/manifest.csv``
    with absolute image paths (nothing is copied)."""
    from occlusion_synth.io import atomic_write_bytes

    from ..data.paired import read_manifest

    src = manifest / "manifest.csv" if manifest.is_dir() else manifest
    rows = read_manifest(src)
    seen: dict[tuple[str, str], int] = {}
    keep = []
    for row in rows:
        key = (row["split"], row["label"])
        if seen.get(key, 0) < per_class:
            seen[key] = seen.get(key, 0) + 1
            for col in ("clean", "occluded", "mask"):
                if row.get(col):
                    row[col] = str((src.parent / row[col]).resolve())
            keep.append(row)
    import io

    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(keep)
    path = out / "quick_data" / "manifest.csv"
    atomic_write_bytes(path, buf.getvalue().encode())
    return path


@click.command("tune")
@click.option("--data", type=click.Path(exists=True, path_type=Path), required=True,
              help="OUT/manifest.csv of `occsynth generate` with a val split (--val-fraction).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Study folder: study.db, pretrain/, trials/, trials.csv, search.png, best_config.json.")
@click.option("--preset", type=click.Choice(list(METHOD_PRESETS)), default="full", show_default=True,
              help="Table-1 row whose hyper-parameters are searched.")
@click.option("--size", type=click.Choice(sorted(SIZE_PRESETS)), default="demo", show_default=True,
              help="Size preset every trial starts from.")
@click.option("--sampler", type=click.Choice(["tpe", "grid", "random"]), default="tpe", show_default=True,
              help="Optuna sampler (grid: the grid values of fer_pi.tune.SEARCH_SPACE).")
@click.option("--trials", type=click.IntRange(min=1), default=None,
              help="Finished trials wanted in the study (default 20, 2 with --quick); a resumed "
                   "study runs only the missing ones.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Start no new trial after this many seconds.")
@click.option("--storage", default=None,
              help="Optuna storage URL (default sqlite:///OUT/study.db; a shared database URL lets "
                   "several processes or machines work on one study).")
@click.option("--study-name", default="fer-pi-tune", show_default=True, help="Study name inside the storage.")
@click.option("--params", default=None,
              help="Comma-separated parameters to search (default: all the preset uses), e.g. "
                   "lambda_adv,lr_student,lr_disc.")
@click.option("--pruner", type=click.Choice(["median", "none"]), default="median", show_default=True,
              help="Stop trials whose per-epoch val accuracy is below the median of earlier trials.")
@click.option("--epochs", type=click.IntRange(min=1), default=None, help="Fine-tuning epochs per trial.")
@click.option("--pretrained-run", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="A `fer-pi pretrain` folder to fine-tune from (default: pretrain once into OUT/pretrain).")
@click.option("--seed", type=int, default=None, help="Seed of training and of the sampler (default 0).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a config field of every trial (repeatable).")
@click.option("--keep-checkpoints", is_flag=True, default=False,
              help="Keep each trial's last.pt/best.pt (deleted by default).")
@click.option("--quick", is_flag=True, default=False,
              help="CI check: tiny net, 32 px, 3 images per class and split, 2 trials of 2 epochs.")
@click.option("--quiet", is_flag=True, default=False, help="No progress bars.")
def tune(data, out, preset, size, sampler, trials, timeout, storage, study_name, params, pruner, epochs,
         pretrained_run, seed, overrides, keep_checkpoints, quick, quiet):
    """Search lambdas, learning rates and K1/K2 on the val split with Optuna.

    Every trial fine-tunes the same pretrained student and is scored by its best per-epoch
    occluded val accuracy (reported to the pruner each epoch); the test split is never read.
    Re-running the same command resumes the study. `fer-pi train --config OUT/best_config.json`
    trains with the best trial's values.
    """
    from ..config import TrainConfig
    from ..errors import FerPiError
    from ..tune import tune as run
    from ..utils import setup_logging

    setup_logging()
    explicit: dict = {}
    if quick:
        explicit.update(QUICK)
        data = quick_subset(data, out)
    explicit["data"] = str(data)
    if epochs is not None:
        explicit["epochs"] = epochs
    if seed is not None:
        explicit["seed"] = seed
    if pretrained_run is not None:
        for name in ("teacher.pt", "student.pt"):
            if not (pretrained_run / name).is_file():
                raise FerPiError(f"--pretrained-run {pretrained_run}: {name} not found")
        explicit.update(teacher=str(pretrained_run / "teacher.pt"), student=str(pretrained_run / "student.pt"))
    cfg = TrainConfig.from_preset(preset, size, **explicit).apply_overrides(list(overrides))
    names = [p.strip() for p in params.split(",") if p.strip()] if params else None
    try:
        res = run(cfg, out, sampler=sampler, trials=trials or (2 if quick else 20), timeout=timeout,
                  storage=storage, study_name=study_name, params=names, pruner=pruner,
                  keep_checkpoints=keep_checkpoints, progress=not quiet)
    except KeyboardInterrupt:
        click.echo("interrupted: the finished trials are in the study; rerun the same command to resume", err=True)
        raise SystemExit(130) from None
    click.echo(f"best val accuracy {100 * res.best_value:.2f}% (trial {res.best_trial}; {res.n_complete} complete, "
               f"{res.n_pruned} pruned, {res.n_failed} failed): {res.best_params}")
    click.echo(f"wrote {res.trials_csv}, {res.plot}, {res.best_config}")
