"""The two phases of Algorithm 1 as resumable runs that write a run folder.

``pretrain(config, out)``: teacher on clean, student on occluded, cross-entropy (lines 1-2).
Writes ``config.json``, ``summary.csv``, ``curves.png``, ``last.pt`` (both nets + optimisers, for
``--resume``), and the exports ``teacher.pt`` / ``student.pt`` (final-epoch weights).

``finetune(config, out)``: teacher frozen, student (+ decoder) and discriminator alternate
(lines 3-14). Writes ``config.json``, ``summary.csv``, ``curves.png``, ``last.pt`` and ``best.pt``
(student with the best accuracy on the occluded validation split ``val`` when the manifest has
one; without a val split nothing is selected, so that no choice is made on the test split, and
``best.pt`` is the last epoch).

``train(config, out)``: pretrains into ``out/pretrain`` first when no teacher is given.
"""
from __future__ import annotations

import csv
import io
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from ..checkpoint import load_checkpoint, pretraining_fingerprint, save_checkpoint
from ..config import TrainConfig
from ..data import build_loader, manifest_splits, open_split, set_loader_epoch
from ..distributed import DistInfo, barrier, init_distributed, unwrap
from ..errors import FerPiError
from ..models import Decoder, Discriminator, build_backbone, load_backbone_weights
from ..utils import (amp_dtype, autocast, get_rng_state, log, make_scaler, resolve_device,
                     seed_everything, set_rng_state)
from .loops import accuracy, finetune_epoch, pretrain_epoch
from .monitor import TensorBoardLog, validate
from .steps import PrivilegedTask

PRETRAIN_COLUMNS = ("epoch", "phase", "lr", "loss_cls", "loss_cls_teacher", "train_acc",
                    "train_acc_teacher", "val_acc", "val_acc_teacher", "time_s")
FINETUNE_COLUMNS = ("epoch", "phase", "lr", "lr_disc", "loss_total", "loss_cls", "loss_sim", "loss_ineq",
                    "loss_adv", "loss_disc", "loss_rec", "train_acc", "val_acc", "val_acc_clean",
                    "val_acc_teacher", "val_psnr", "time_s")


@dataclass
class Context:
    """Device, precision and process placement shared by a phase's parts."""

    device: torch.device
    dtype: torch.dtype | None
    dist: DistInfo
    channels_last: bool
    progress: bool
    compile: bool = False

    @property
    def autocast(self) -> Callable:
        return partial(autocast, self.device, self.dtype)


def _context(cfg: TrainConfig, progress: bool) -> Context:
    device = resolve_device(cfg.device)
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    dist = init_distributed(device.type)
    if dist.enabled and device.type == "cuda":
        device = torch.device("cuda", dist.local_rank)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = not cfg.deterministic
        torch.backends.cudnn.deterministic = cfg.deterministic
    return Context(device, amp_dtype(cfg.amp, device), dist,
                   cfg.channels_last and device.type == "cuda", progress and dist.is_main, cfg.compile)


def _on_the_fly(cfg: TrainConfig) -> Any:
    if not cfg.on_the_fly:
        return None
    from occlusion_synth.transforms import Occlude

    return Occlude(templates=cfg.templates or None)


def resolve_val_split(cfg: TrainConfig) -> str | None:
    """``val_split`` with ``auto`` resolved: ``val`` when the manifest has it, else ``None``.

    ``None`` means no checkpoint selection: choosing ``best.pt`` on the test split would make the
    reported test accuracy optimistic. Name the test split explicitly to monitor it anyway.
    """
    if cfg.val_split == "none":
        return None
    splits = manifest_splits(cfg.data)
    if cfg.val_split != "auto":
        if cfg.val_split not in splits:
            raise FerPiError(f"val_split={cfg.val_split!r}: not in {cfg.data} (splits: {', '.join(splits)})")
        return cfg.val_split
    return "val" if "val" in splits else None


def _loaders(cfg: TrainConfig, ctx: Context):
    if not cfg.data:
        raise FerPiError("--data: a manifest.csv from `occsynth generate` is required")
    occ = _on_the_fly(cfg)
    common = dict(image_size=cfg.image_size, on_the_fly=occ, landmarks=cfg.landmarks, seed=cfg.seed)
    train_ds = open_split(cfg.data, cfg.train_split, augment=cfg.augment, **common)
    if max(train_ds.labels) >= cfg.num_classes or min(train_ds.labels) < 0:
        raise FerPiError(f"{cfg.data}: labels range {min(train_ds.labels)}..{max(train_ds.labels)} but "
                         f"num_classes={cfg.num_classes} (contempt is 7: use --set num_classes=8)")
    train = build_loader(train_ds, cfg.batch_size, True, cfg.seed, cfg.num_workers, ctx.dist.enabled,
                         drop_last=len(train_ds) > cfg.batch_size * ctx.dist.world_size,
                         pin_memory=ctx.device.type == "cuda")
    split = resolve_val_split(cfg)
    val = None
    if split is None and cfg.val_split == "auto" and ctx.dist.is_main:
        log.info(f"no 'val' split in {cfg.data}: no checkpoint selection (best.pt = last epoch); "
                 "score the test split with `fer-pi evaluate`")
    if split is not None:
        if split == cfg.test_split and ctx.dist.is_main:
            log.warning(f"val_split={split!r} is the test split: best.pt is selected on it "
                        "(an optimistic estimate)")
        val_ds = open_split(cfg.data, split, augment=False, **common)
        val = build_loader(val_ds, cfg.batch_size, False, cfg.seed, cfg.num_workers, ctx.dist.enabled)
    return train, val, split


def _optimizer(params, lr: float, wd: float) -> torch.optim.Optimizer:
    # The paper gives learning rates but no optimiser; Adam matches their magnitude.
    return torch.optim.Adam(params, lr=lr, weight_decay=wd)


def _scheduler(opt: torch.optim.Optimizer, kind: str, epochs: int):
    if kind == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(epochs, 1))
    if kind == "step":
        return torch.optim.lr_scheduler.StepLR(opt, step_size=max(epochs // 3, 1), gamma=0.1)
    return None


def _prepare(model: nn.Module, ctx: Context, wrap: bool = True) -> nn.Module:
    model = model.to(ctx.device)
    if ctx.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if ctx.compile:
        model.compile()  # in place: state_dict keys stay those of the eager module
    if wrap and ctx.dist.enabled:
        ids = [ctx.device.index] if ctx.device.type == "cuda" else None
        model = nn.parallel.DistributedDataParallel(model, device_ids=ids)
    return model


def _write_summary(path: Path, columns: tuple[str, ...], rows: list[dict]) -> None:
    from occlusion_synth.io import atomic_write_bytes

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    atomic_write_bytes(path, buf.getvalue().encode())


def _read_summary(path: Path, upto_epoch: int) -> list[dict]:
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as fh:
        return [r for r in csv.DictReader(fh) if int(r["epoch"]) <= upto_epoch]


def _finish(out: Path, ctx: Context) -> None:
    if ctx.dist.is_main and (out / "summary.csv").is_file():  # absent when 0 epochs were asked for
        from ..plots import plot_curves

        plot_curves(out / "summary.csv", out / "curves.png")


def _state(opt_or_sched) -> dict | None:
    return opt_or_sched.state_dict() if opt_or_sched is not None else None


def _load_state(obj, state) -> None:
    if obj is not None and state is not None:
        obj.load_state_dict(state)


def _resumed_config(payload: dict, cfg: TrainConfig) -> TrainConfig:
    """The run's saved config, except where it runs (device, workers) and how long (epoch counts,
    so a finished run can be extended; with a non-constant schedule that changes the schedule)."""
    keep = {k: getattr(cfg, k) for k in ("device", "num_workers", "epochs", "pretrain_epochs")}
    return TrainConfig.from_dict({**payload["config"], **keep})


def _check_resume(out: Path, resume: bool) -> dict | None:
    last = out / "last.pt"
    if resume:
        if not last.is_file():
            raise FerPiError(f"--resume: {last} not found (nothing to resume)")
        return load_checkpoint(last)
    return None


def _start(cfg: TrainConfig, out: str | Path, resume: bool, progress: bool):
    """The start both phases share: device context, resumed config, seeding, data loaders."""
    out = Path(out)
    ctx = _context(cfg, progress)
    payload = _check_resume(out, resume)
    if payload is not None:
        cfg = _resumed_config(payload, cfg)
    seed_everything(cfg.seed)
    return out, ctx, payload, cfg, _loaders(cfg, ctx)


# ------------------------------------------------------------------------------ phase 1
def pretrain(cfg: TrainConfig, out: str | Path, resume: bool = False, progress: bool = True) -> Path:
    """Pre-train teacher (clean) and student (occluded) with cross-entropy; returns the run folder."""
    out, ctx, payload, cfg, (train_loader, val_loader, val_split) = _start(cfg, out, resume, progress)
    init = cfg.weights if payload is None else None  # resuming: the checkpoint holds the weights
    teacher = build_backbone(cfg.arch, init, cfg.num_classes)
    student = build_backbone(cfg.arch, None, cfg.num_classes)
    # Both networks start from the same weights, as in the paper (both from ImageNet): with a
    # random init this keeps their layer2 features comparable, which the adversarial loss needs.
    student.load_state_dict(teacher.state_dict())
    if payload is not None:
        teacher.load_state_dict(payload["teacher"])
        student.load_state_dict(payload["student"])
    teacher, student = _prepare(teacher, ctx), _prepare(student, ctx)
    opt_s = _optimizer(student.parameters(), cfg.lr_pretrain, cfg.weight_decay)
    opt_t = _optimizer(teacher.parameters(), cfg.lr_teacher, cfg.weight_decay)
    sch_s = _scheduler(opt_s, cfg.pretrain_scheduler, cfg.pretrain_epochs)
    sch_t = _scheduler(opt_t, cfg.pretrain_scheduler, cfg.pretrain_epochs)
    scalers = (make_scaler(ctx.device, ctx.dtype), make_scaler(ctx.device, ctx.dtype))
    start = 0
    if payload is not None:
        _load_state(opt_s, payload["optim"]["student"]), _load_state(opt_t, payload["optim"]["teacher"])
        _load_state(sch_s, payload["sched"]["student"]), _load_state(sch_t, payload["sched"]["teacher"])
        _load_state(scalers[0], payload["scaler"]["student"]), _load_state(scalers[1], payload["scaler"]["teacher"])
        set_rng_state(payload["rng"])
        start = int(payload["epoch"])
    rows = _read_summary(out / "summary.csv", start) if payload is not None else []
    if ctx.dist.is_main:
        out.mkdir(parents=True, exist_ok=True)
        cfg.save(out / "config.json")
    metrics: dict[str, Any] = {}
    fingerprint = pretraining_fingerprint(cfg)  # data + arch + seed: a later run checks it before reuse
    tb = TensorBoardLog(out, purge_step=start + 1) if cfg.log == "tensorboard" and ctx.dist.is_main else None
    for epoch in range(start, cfg.pretrain_epochs):
        t0 = time.perf_counter()
        set_loader_epoch(train_loader, epoch)
        lr = opt_s.param_groups[0]["lr"]
        metrics = pretrain_epoch(student, teacher, train_loader, opt_s, opt_t, ctx.device, scalers,
                                 ctx.autocast, ctx.channels_last, ctx.progress,
                                 desc=f"pretrain {epoch + 1}/{cfg.pretrain_epochs}")
        for sch in (sch_s, sch_t):
            if sch is not None:
                sch.step()
        if val_loader is not None:
            metrics["val_acc"] = accuracy(student, val_loader, ctx.device, "occluded", ctx.autocast, ctx.channels_last)
            metrics["val_acc_teacher"] = accuracy(teacher, val_loader, ctx.device, "clean", ctx.autocast,
                                                  ctx.channels_last)
        row = dict(epoch=epoch + 1, phase="pretrain", lr=lr, time_s=time.perf_counter() - t0, **metrics)
        rows.append(row)
        if ctx.dist.is_main:
            save_checkpoint(out / "last.pt", {
                "config": cfg.to_dict(), "phase": "pretrain", "epoch": epoch + 1,
                "student": unwrap(student).state_dict(), "teacher": unwrap(teacher).state_dict(),
                "optim": {"student": opt_s.state_dict(), "teacher": opt_t.state_dict()},
                "sched": {"student": _state(sch_s), "teacher": _state(sch_t)},
                "scaler": {"student": scalers[0].state_dict(), "teacher": scalers[1].state_dict()},
                "rng": get_rng_state(), "metrics": metrics, "val_split": val_split or "",
                "fingerprint": fingerprint})
            _write_summary(out / "summary.csv", PRETRAIN_COLUMNS, rows)
            if tb is not None:
                tb.log("pretrain", row)
            log.info(_line("pretrain", epoch + 1, cfg.pretrain_epochs, row))
    if tb is not None:
        tb.close()
    if ctx.dist.is_main:
        base = {"config": cfg.to_dict(), "phase": "pretrain", "epoch": cfg.pretrain_epochs, "metrics": metrics,
                "fingerprint": fingerprint}
        save_checkpoint(out / "teacher.pt", {**base, "teacher": unwrap(teacher).state_dict()})
        save_checkpoint(out / "student.pt", {**base, "student": unwrap(student).state_dict()})
        _finish(out, ctx)
    barrier()
    return out


def _line(phase: str, epoch: int, total: int, row: dict) -> str:
    keys = [k for k in ("loss_total", "loss_cls", "loss_cls_teacher", "loss_disc", "train_acc", "val_acc",
                        "val_acc_teacher", "val_acc_clean", "val_psnr") if k in row]
    parts = " ".join(f"{k} {row[k]:.4f}" for k in keys)
    return f"[{phase}] epoch {epoch}/{total} {parts} ({row['time_s']:.1f} s)"


# ------------------------------------------------------------------------------ phase 2
def _load_net(cfg: TrainConfig, path: str, prefer: str) -> nn.Module:
    net = build_backbone(cfg.arch, None, cfg.num_classes)
    payload = load_checkpoint(path)
    which = prefer if prefer in payload else ("student" if "student" in payload else "teacher")
    if which != prefer:
        log.info(f"{path}: no {prefer!r} weights, using its {which!r} weights")
    load_backbone_weights(net, path, which=which)
    return net


def finetune(cfg: TrainConfig, out: str | Path, resume: bool = False, progress: bool = True,
             on_epoch: Callable[[int, dict], None] | None = None) -> Path:
    """Fine-tune the student under the frozen teacher (Algorithm 1); returns the run folder.

    ``on_epoch(epoch, row)`` is called after each epoch's checkpoints are written (``row`` is the
    summary row, with ``val_acc`` when there is a val split); ``fer-pi tune`` reports to Optuna
    there and may raise ``optuna.TrialPruned`` to stop the run.
    """
    out, ctx, payload, cfg, (train_loader, val_loader, val_split) = _start(cfg, out, resume, progress)
    needs_teacher = cfg.use_sim or cfg.use_ineq or cfg.use_adv
    if needs_teacher and not cfg.teacher:
        raise FerPiError(f"preset {cfg.method!r} needs a pretrained teacher: give --teacher CKPT or "
                         "--pretrained-run DIR (or run `fer-pi train` without them to pretrain first)")
    # the teacher is also loaded without a term that needs it, to report its clean val accuracy
    wants_teacher = needs_teacher or (bool(cfg.teacher) and val_loader is not None)
    teacher = _prepare(_load_net(cfg, cfg.teacher, "teacher"), ctx, wrap=False) if wants_teacher else None
    if cfg.student:
        student = _load_net(cfg, cfg.student, "student")
    else:
        log.warning(f"no --student checkpoint: fine-tuning from weights={cfg.weights!r} (not pretrained)")
        student = build_backbone(cfg.arch, cfg.weights, cfg.num_classes)
    channels = student.feature_channels
    disc = Discriminator(channels) if cfg.use_adv else None
    decoder = Decoder(channels, cfg.image_size) if cfg.use_rec else None
    if payload is not None:
        student.load_state_dict(payload["student"])
        if disc is not None:
            disc.load_state_dict(payload["discriminator"])
        if decoder is not None:
            decoder.load_state_dict(payload["decoder"])
    student = _prepare(student, ctx)
    disc = _prepare(disc, ctx) if disc is not None else None
    decoder = _prepare(decoder, ctx) if decoder is not None else None
    groups = [{"params": list(student.parameters()), "lr": cfg.lr_student}]
    if decoder is not None:
        groups.append({"params": list(decoder.parameters()), "lr": cfg.lr_decoder})
    opt_s = _optimizer(groups, cfg.lr_student, cfg.weight_decay)
    opt_d = _optimizer(disc.parameters(), cfg.lr_disc, 0.0) if disc is not None else None
    sch_s = _scheduler(opt_s, cfg.scheduler, cfg.epochs)
    sch_d = _scheduler(opt_d, cfg.scheduler, cfg.epochs) if opt_d is not None else None
    scalers = (make_scaler(ctx.device, ctx.dtype), make_scaler(ctx.device, ctx.dtype))
    task = PrivilegedTask(student, teacher if needs_teacher else None, disc, decoder, cfg)
    if teacher is not None:
        teacher.eval().requires_grad_(False)
    start, best, best_epoch = 0, -1.0, 0
    if payload is not None:
        _load_state(opt_s, payload["optim"]["student"]), _load_state(opt_d, payload["optim"].get("disc"))
        _load_state(sch_s, payload["sched"]["student"]), _load_state(sch_d, payload["sched"].get("disc"))
        _load_state(scalers[0], payload["scaler"]["student"]), _load_state(scalers[1], payload["scaler"]["disc"])
        set_rng_state(payload["rng"])
        start, best, best_epoch = int(payload["epoch"]), float(payload["best"]), int(payload["best_epoch"])
    rows = _read_summary(out / "summary.csv", start) if payload is not None else []
    if ctx.dist.is_main:
        out.mkdir(parents=True, exist_ok=True)
        cfg.save(out / "config.json")
    tb = TensorBoardLog(out, purge_step=start + 1) if cfg.log == "tensorboard" and ctx.dist.is_main else None
    for epoch in range(start, cfg.epochs):
        t0 = time.perf_counter()
        set_loader_epoch(train_loader, epoch)
        lr, lr_d = opt_s.param_groups[0]["lr"], (opt_d.param_groups[0]["lr"] if opt_d else "")
        metrics = finetune_epoch(task, train_loader, opt_s, opt_d, ctx.device, cfg.k1, cfg.k2, scalers,
                                 ctx.autocast, ctx.channels_last, ctx.progress,
                                 desc=f"{cfg.method} {epoch + 1}/{cfg.epochs}")
        for sch in (sch_s, sch_d):
            if sch is not None:
                sch.step()
        examples = None
        if val_loader is not None:
            val, examples = validate(student, val_loader, ctx.device, teacher, decoder, ctx.autocast,
                                     ctx.channels_last)
            metrics.update(val)
        row = dict(epoch=epoch + 1, phase="finetune", lr=lr, lr_disc=lr_d, time_s=time.perf_counter() - t0,
                   **metrics)
        rows.append(row)
        score = metrics.get("val_acc", float("nan"))
        improved = val_loader is None or (score == score and score > best)
        if improved:
            best, best_epoch = (score if val_loader is not None else best), epoch + 1
        if ctx.dist.is_main:
            nets = {"student": unwrap(student).state_dict()}
            if disc is not None:
                nets["discriminator"] = unwrap(disc).state_dict()
            if decoder is not None:
                nets["decoder"] = unwrap(decoder).state_dict()
            base = {"config": cfg.to_dict(), "phase": "finetune", "epoch": epoch + 1, "metrics": metrics,
                    "val_split": val_split or "", **nets}
            if improved:
                save_checkpoint(out / "best.pt", base)
            save_checkpoint(out / "last.pt", {
                **base, "best": best, "best_epoch": best_epoch,
                "optim": {"student": opt_s.state_dict(), "disc": _state(opt_d)},
                "sched": {"student": _state(sch_s), "disc": _state(sch_d)},
                "scaler": {"student": scalers[0].state_dict(), "disc": scalers[1].state_dict()},
                "rng": get_rng_state()})
            _write_summary(out / "summary.csv", FINETUNE_COLUMNS, rows)
            if tb is not None:
                tb.log("finetune", row, examples)
            log.info(_line(cfg.method, epoch + 1, cfg.epochs, row))
        if on_epoch is not None:
            try:
                on_epoch(epoch + 1, row)
            except BaseException:  # e.g. optuna.TrialPruned: the event file is still complete
                if tb is not None:
                    tb.close()
                raise
    if tb is not None:
        tb.close()
    if ctx.dist.is_main:
        _finish(out, ctx)
        if val_loader is not None:
            log.info(f"[{cfg.method}] best val_acc {best:.4f} at epoch {best_epoch} "
                     f"(split {val_split!r}) -> {out / 'best.pt'}")
    barrier()
    return out


def train(cfg: TrainConfig, out: str | Path, resume: bool = False, progress: bool = True,
          on_epoch: Callable[[int, dict], None] | None = None) -> Path:
    """The whole method: pretrain into ``out/pretrain`` when no teacher is given, then fine-tune
    (``on_epoch``: see :func:`finetune`)."""
    out = Path(out)
    needs_teacher = cfg.use_sim or cfg.use_ineq or cfg.use_adv
    if not cfg.student or (needs_teacher and not cfg.teacher):
        pre = out / "pretrain"
        if not (pre / "student.pt").is_file():
            pretrain(cfg, pre, resume=resume and (pre / "last.pt").is_file(), progress=progress)
        cfg = cfg.replace(teacher=cfg.teacher or str(pre / "teacher.pt"),
                          student=cfg.student or str(pre / "student.pt"))
    return finetune(cfg, out, resume=resume and (out / "last.pt").is_file(), progress=progress,
                    on_epoch=on_epoch)


__all__ = ["FINETUNE_COLUMNS", "PRETRAIN_COLUMNS", "finetune", "pretrain", "resolve_val_split", "train"]
