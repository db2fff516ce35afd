"""``fer-pi pretrain`` and ``fer-pi train``: thin wrappers over :mod:`fer_pi.engine`.

Precedence of settings: size preset (``--size``) < method preset (``--preset``) < explicit options
< ``--set key=value``. With ``--resume`` the run's own ``config.json`` / ``last.pt`` config wins.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ..config import METHOD_PRESETS, SIZE_PRESETS, TrainConfig
from ..errors import FerPiError

_existing = click.Path(exists=True, dir_okay=True, path_type=Path)


def _common(f):
    """Options shared by both commands (applied bottom-up)."""
    opts = [
        click.option("--data", "data", type=click.Path(path_type=Path), required=True,
                     help="OUT/manifest.csv (or OUT) written by `occsynth generate`, or WebDataset shards "
                          "to stream: a shard folder, its index.json or a pattern such as 'shards/train-*.tar'."),
        click.option("--out", "out", type=click.Path(file_okay=False, path_type=Path), required=True,
                     help="Run folder to create (config.json, summary.csv, checkpoints, curves.png)."),
        click.option("--size", "size", type=click.Choice(sorted(SIZE_PRESETS)), default=None,
                     help="Size preset: demo (CPU minutes), paper-rafdb (88 px), paper-affectnet (224 px)."),
        click.option("--arch", type=click.Choice(["resnet50", "resnet34", "resnet18", "tiny"]), default=None,
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
        click.option("--amp", type=click.Choice(["off", "bf16", "fp16"]), default=None,
                     help="Mixed precision (CUDA; default off)."),
        click.option("--num-workers", type=click.IntRange(min=0), default=None,
                     help="DataLoader worker processes (results do not depend on it)."),
        click.option("--on-the-fly", is_flag=True, default=False,
                     help="Occlude clean images at load time (occlusion_synth.Occlude) instead of stored pairs."),
        click.option("--resume", is_flag=True, default=False, help="Continue the run in --out from last.pt."),
        click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
                     help="Override any config field (repeatable), e.g. --set lambda_adv=0.5."),
        click.option("--quiet", is_flag=True, default=False, help="No progress bars."),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def _explicit(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def _build(method: str, size: str | None, explicit: dict[str, Any], overrides: tuple[str, ...]) -> TrainConfig:
    cfg = TrainConfig.from_preset(method, size, **explicit)
    return cfg.apply_overrides(list(overrides))


def _resume_config(out: Path, cfg: TrainConfig, explicit: dict[str, Any]) -> TrainConfig:
    """With --resume the run's saved config.json wins, except an explicit --device, --num-workers
    or --epochs / --pretrain-epochs (to extend a finished run)."""
    saved = out / "config.json"
    if not saved.is_file():  # `train` interrupted while pretraining inside the run
        saved = out / "pretrain" / "config.json"
    if not saved.is_file():
        raise FerPiError(f"--resume: {out / 'config.json'} not found (nothing to resume in {out})")
    saved_cfg = TrainConfig.load(saved)
    keep = {k: getattr(cfg, k) for k in ("device", "num_workers", "epochs", "pretrain_epochs")
            if k in explicit}
    return saved_cfg.replace(**keep)


def _done(message: str) -> None:
    """Print the result once (rank 0 under torchrun) and leave the process group."""
    from ..distributed import cleanup, current

    if current().is_main:
        click.echo(message)
    cleanup()


def _pretrained_config(path: Path) -> dict[str, Any]:
    """arch / num_classes / image_size of a pretrained checkpoint (to inherit when not given)."""
    from ..checkpoint import load_checkpoint

    config = load_checkpoint(path).get("config") or {}
    return {k: config[k] for k in ("arch", "num_classes", "image_size", "weights") if k in config}


@click.command("pretrain")
@_common
@click.option("--epochs", type=click.IntRange(min=0), default=None, help="Pre-training epochs.")
@click.option("--lr", type=float, default=None, help="Learning rate of both nets (Adam).")
def pretrain(data, out, size, arch, weights, batch_size, image_size, seed, device, amp, num_workers,
             on_the_fly, resume, overrides, quiet, epochs, lr):
    """Phase 1: teacher on clean images, student on occluded images, cross-entropy.

    Writes OUT/teacher.pt and OUT/student.pt (final-epoch weights), last.pt (resumable state),
    config.json, summary.csv and curves.png. The student alone is the paper's "ResNet" baseline.
    """
    from ..engine import pretrain as run
    from ..utils import setup_logging

    setup_logging()
    explicit = _explicit(data=str(data), arch=arch, weights=weights, batch_size=batch_size,
                         image_size=image_size, seed=seed, device=device, amp=amp, num_workers=num_workers,
                         pretrain_epochs=epochs, lr_pretrain=lr, lr_teacher=lr)
    if on_the_fly:
        explicit["on_the_fly"] = True
    cfg = _build("resnet", size, explicit, overrides)
    if resume:
        cfg = _resume_config(out, cfg, explicit)
    run(cfg, out, resume=resume, progress=not quiet)
    _done(f"pretrained teacher and student -> {out / 'teacher.pt'}, {out / 'student.pt'}")


@click.command("train")
@_common
@click.option("--preset", type=click.Choice(list(METHOD_PRESETS)), default="full", show_default=True,
              help="Table-1 row: which privileged-information losses are on.")
@click.option("--teacher", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Pretrained teacher checkpoint (teacher.pt or a checkpoint with teacher weights).")
@click.option("--student", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Pretrained student checkpoint to fine-tune (student.pt).")
@click.option("--pretrained-run", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="A `fer-pi pretrain` folder: uses its teacher.pt and student.pt.")
@click.option("--epochs", type=click.IntRange(min=0), default=None, help="Fine-tuning epochs.")
@click.option("--pretrain-epochs", type=click.IntRange(min=0), default=None,
              help="Epochs of the pre-training done first when no teacher/student is given.")
def train(data, out, size, arch, weights, batch_size, image_size, seed, device, amp, num_workers,
          on_the_fly, resume, overrides, quiet, preset, teacher, student, pretrained_run, epochs,
          pretrain_epochs):
    """Phase 2 (Algorithm 1): fine-tune the student under the frozen teacher.

    Without --teacher/--student/--pretrained-run both nets are pretrained first into OUT/pretrain.
    Preset `resnet` continues the student with cross-entropy only for the same number of epochs,
    so every Table-1 row gets the same training budget. Writes config.json, summary.csv,
    curves.png, last.pt and best.pt (best occluded accuracy on the val split; the last epoch when
    the manifest has no val split).
    """
    from ..engine import train as run
    from ..utils import setup_logging

    setup_logging()
    if pretrained_run is not None:
        for name in ("teacher.pt", "student.pt"):
            if not (pretrained_run / name).is_file():
                raise FerPiError(f"--pretrained-run {pretrained_run}: {name} not found "
                                 "(expected the output folder of `fer-pi pretrain`)")
        teacher = teacher or pretrained_run / "teacher.pt"
        student = student or pretrained_run / "student.pt"
    explicit = _explicit(data=str(data), arch=arch, weights=weights, batch_size=batch_size,
                         image_size=image_size, seed=seed, device=device, amp=amp, num_workers=num_workers,
                         epochs=epochs, pretrain_epochs=pretrain_epochs,
                         teacher=str(teacher) if teacher else None, student=str(student) if student else None)
    if on_the_fly:
        explicit["on_the_fly"] = True
    source = student or teacher
    if source is not None:
        for key, value in _pretrained_config(source).items():
            explicit.setdefault(key, value)
    cfg = _build(preset, size, explicit, overrides)
    if resume:
        cfg = _resume_config(out, cfg, explicit)
    run(cfg, out, resume=resume, progress=not quiet)
    _done(f"fine-tuned student ({cfg.method}) -> {out / 'best.pt'}")
