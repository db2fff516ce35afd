"""``fer-pi pretrain`` and ``fer-pi train``: option parsing over :mod:`fer_pi.runs` (configs, run-folder
safety, pretraining reuse checks) and :mod:`fer_pi.engine`.

Precedence of settings: size preset (``--size-preset``) < method preset (``--preset``) < explicit options
< ``--set key=value``. With ``--resume`` the run's own ``config.json`` / ``last.pt`` config wins.
An --out that holds an earlier run is refused unless --resume or --overwrite.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ..config import AMP_MODES, ARCHS, METHOD_PRESETS, SIZE_PRESETS


def _common(f):
    """Options shared by both commands (applied bottom-up)."""
    opts = [
        click.option("--data", "data", type=click.Path(path_type=Path), required=True,
                     help="OUT/manifest.csv (or OUT) written by `occsynth generate`, or WebDataset shards "
                          "to stream: a shard folder, its index.json or a pattern such as 'shards/train-*.tar'."),
        click.option("--out", "out", type=click.Path(file_okay=False, path_type=Path), required=True,
                     help="Run folder to create (config.json, summary.csv, checkpoints, curves.png)."),
        click.option("--size-preset", "--size", "size", type=click.Choice(sorted(SIZE_PRESETS)), default=None,
                     help="Size preset: demo (CPU minutes), paper-rafdb (88 px), paper-affectnet (224 px); "
                          "--size is its older name."),
        click.option("--arch", type=click.Choice(list(ARCHS)), default=None,
                     help="Backbone architecture (default from the size preset; tiny is a test net)."),
        click.option("--weights", default=None,
                     help="imagenet (local torch hub cache only), none, or a state_dict/checkpoint path."),
        click.option("--batch-size", type=click.IntRange(min=1), default=None,
                     help="Mini-batch size (default from the size preset)."),
        click.option("--image-size", type=click.IntRange(min=8), default=None,
                     help="Square input side in pixels (paper: 88 RAF-DB, 224 AffectNet)."),
        click.option("--seed", type=int, default=None,
                     help="Seed for initialisation, sampling and augmentation (default 0)."),
        click.option("--device", default=None, help="auto (default), cpu, cuda, cuda:N."),
        click.option("--amp", type=click.Choice(list(AMP_MODES)), default=None,
                     help="Mixed precision (CUDA; default off)."),
        click.option("--num-workers", type=click.IntRange(min=0), default=None,
                     help="DataLoader worker processes (results do not depend on it)."),
        click.option("--on-the-fly", is_flag=True, default=False,
                     help="Occlude clean images at load time (occlusion_synth.Occlude) instead of stored pairs."),
        click.option("--resume", is_flag=True, default=False, help="Continue the run in --out from last.pt."),
        click.option("--overwrite", is_flag=True, default=False,
                     help="Replace the earlier run in --out (deletes only the files a run writes there)."),
        click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
                     help="Override any config field (repeatable), e.g. --set lambda_adv=0.5."),
        click.option("--quiet", is_flag=True, default=False, help="No progress bars."),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def _explicit(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def _done(message: str) -> None:
    """Print the result once (rank 0 under torchrun) and leave the process group."""
    from ..distributed import cleanup, current

    if current().is_main:
        click.echo(message)
    cleanup()


@click.command("pretrain")
@_common
@click.option("--epochs", type=click.IntRange(min=0), default=None, help="Pre-training epochs.")
@click.option("--lr", type=float, default=None, help="Learning rate of both nets (Adam).")
def pretrain(data, out, size, arch, weights, batch_size, image_size, seed, device, amp, num_workers,
             on_the_fly, resume, overwrite, overrides, quiet, epochs, lr):
    """Phase 1: teacher on clean images, student on occluded images, cross-entropy.

    Writes OUT/teacher.pt and OUT/student.pt (final-epoch weights), last.pt (resumable state),
    config.json, summary.csv and curves.png. The student alone is the paper's "ResNet" baseline.
    """
    from ..runs import configure, launch
    from ..utils import setup_logging

    setup_logging()
    explicit = _explicit(data=str(data), arch=arch, weights=weights, batch_size=batch_size,
                         image_size=image_size, seed=seed, device=device, amp=amp, num_workers=num_workers,
                         pretrain_epochs=epochs, lr_pretrain=lr, lr_teacher=lr, on_the_fly=on_the_fly or None)
    cfg = configure("resnet", size, explicit, overrides, out=out, resume=resume)
    launch("pretrain", cfg, out, resume=resume, overwrite=overwrite, progress=not quiet)
    _done(f"pretrained teacher and student -> {out / 'teacher.pt'}, {out / 'student.pt'}")


@click.command("train")
@_common
@click.option("--preset", type=click.Choice(list(METHOD_PRESETS)), default="full", show_default=True,
              help="Table-1 row: which privileged-information losses are on.")
@click.option("--teacher", type=click.Path(exists=True, path_type=Path), default=None,
              help="Pretrained teacher checkpoint (teacher.pt, a checkpoint with teacher weights, or a "
                   "`fer-pi pretrain` folder).")
@click.option("--student", type=click.Path(exists=True, path_type=Path), default=None,
              help="Pretrained student checkpoint to fine-tune (student.pt, or a run folder: its best.pt / "
                   "student.pt).")
@click.option("--pretrained-run", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="A `fer-pi pretrain` folder: uses its teacher.pt and student.pt.")
@click.option("--epochs", type=click.IntRange(min=0), default=None, help="Fine-tuning epochs.")
@click.option("--pretrain-epochs", type=click.IntRange(min=0), default=None,
              help="Epochs of the pre-training done first when no teacher/student is given.")
@click.option("--config", "config", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Start from a config JSON (a run's config.json, `fer-pi tune`'s best_config.json); "
                   "--size/--preset apply only when given, other options and --set override it.")
@click.option("--log", "log_mode", type=click.Choice(["csv", "tensorboard"]), default=None,
              help="tensorboard: also write OUT/tensorboard/ (losses, accuracies, reconstructions).")
def train(data, out, size, arch, weights, batch_size, image_size, seed, device, amp, num_workers,
          on_the_fly, resume, overwrite, overrides, quiet, preset, teacher, student, pretrained_run, epochs,
          pretrain_epochs, config, log_mode):
    """Phase 2 (Algorithm 1): fine-tune the student under the frozen teacher.

    Without --teacher/--student/--pretrained-run both nets are pretrained first into OUT/pretrain.
    Preset `resnet` continues the student with cross-entropy only for the same number of epochs,
    so every Table-1 row gets the same training budget. Writes config.json, summary.csv,
    curves.png, last.pt and best.pt (best occluded accuracy on the val split; the last epoch when
    the manifest has no val split).
    """
    from ..runs import configure, launch, pretrained_from_run
    from ..utils import setup_logging

    setup_logging()
    teacher, student = pretrained_from_run(pretrained_run, teacher, student)
    explicit = _explicit(data=str(data), arch=arch, weights=weights, batch_size=batch_size,
                         image_size=image_size, seed=seed, device=device, amp=amp, num_workers=num_workers,
                         epochs=epochs, pretrain_epochs=pretrain_epochs, on_the_fly=on_the_fly or None,
                         teacher=str(teacher) if teacher else None, student=str(student) if student else None,
                         log=log_mode)
    preset_given = click.get_current_context().get_parameter_source("preset") is not click.core.ParameterSource.DEFAULT
    cfg = configure(preset, size, explicit, overrides, out=out, resume=resume, pretrained=student or teacher,
                    config=config, method_given=preset_given)
    launch("train", cfg, out, resume=resume, overwrite=overwrite, progress=not quiet)
    _done(f"fine-tuned student ({cfg.method}) -> {out / 'best.pt'}")
