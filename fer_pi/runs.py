"""Run folders: building a run's config (presets, inheritance, resume), keeping earlier runs safe.

What ``fer-pi pretrain`` and ``fer-pi train`` do besides parsing options lives here, so that any
caller (the CLI, a script, :mod:`fer_pi.ablation`) gets the same rules:

* a folder that holds an earlier run (its ``config.json`` or checkpoints) is refused unless the
  caller asks to ``resume`` it or to ``overwrite`` it; overwriting deletes only the files a run
  writes (:data:`RUN_FILES`, ``pretrain/``, ``eval/``), never anything else in the folder;
* a pretraining is reused only when it was made with the same data, architecture and seed: every
  pretraining checkpoint records :func:`pretraining_fingerprint` (a hash of the data manifest, the
  arch and the seed), and :func:`check_pretraining` compares it with the run about to start;
* ``--resume`` takes the run's saved config (except where and how long it runs).

Typical use::

    cfg = configure("full", "demo", {"data": "pairs/manifest.csv", "epochs": 3}, out="runs/full")
    launch("train", cfg, "runs/full")                # refuses runs/full if it holds a run
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

from .checkpoint import pretraining_fingerprint
from .config import SIZE_PRESETS, TrainConfig
from .errors import FerPiError

#: files a pretraining or fine-tuning run writes into its folder
RUN_FILES = ("config.json", "summary.csv", "curves.png", "last.pt", "best.pt", "teacher.pt", "student.pt")
#: any of these marks a folder as holding a run
RUN_MARKERS = ("config.json", "last.pt", "best.pt", "teacher.pt", "student.pt")
#: files `fer-pi evaluate` writes into RUN/eval by default
EVAL_FILES = ("evaluation.json", "evaluation.md", "confusion.png", "reconstructions.png", "category.png",
              "robustness.md", "robustness_category.png", "robustness_coverage.png")
#: what a run inherits from the pretrained checkpoint it starts from, unless given explicitly
INHERITED = ("arch", "num_classes", "image_size", "weights", "seed")
#: settings a resumed run may change (where it runs, and how long, to extend a finished run)
RESUMABLE = ("device", "num_workers", "epochs", "pretrain_epochs")

Phase = Literal["pretrain", "train", "finetune"]


# ------------------------------------------------------------------------------ run folders
def holds_run(folder: str | os.PathLike) -> bool:
    """True when ``folder`` (or its ``pretrain/`` sub-folder) holds an earlier run's config or checkpoints."""
    d = Path(folder)
    return any((d / sub / name).is_file() for sub in ("", "pretrain") for name in RUN_MARKERS)


def _is_main_process() -> bool:
    """Rank 0 under torchrun (``RANK`` unset: a single process)."""
    return int(os.environ.get("RANK", "0") or 0) == 0


def run_files(folder: str | os.PathLike) -> list[Path]:
    """The files an earlier run (and `fer-pi evaluate` into its ``eval/``) wrote in ``folder``."""
    d = Path(folder)
    found = [d / sub / n for sub in ("", "pretrain") for n in RUN_FILES if (d / sub / n).is_file()]
    found += [d / sub / "eval" / n for sub in ("", "pretrain") for n in EVAL_FILES if (d / sub / "eval" / n).is_file()]
    return found


def prepare_run_dir(out: str | os.PathLike, resume: bool = False, overwrite: bool = False,
                    keep: Sequence[str | os.PathLike] = ()) -> None:
    """Refuse, resume or clear the run folder ``out`` before a run starts.

    Args:
        out: the run folder (``--out``).
        resume: continue the run in ``out`` (checked later against its ``last.pt``).
        overwrite: delete the files an earlier run wrote there (:func:`run_files`) and start afresh;
            any other file in ``out`` is left alone.
        keep: files the new run reads (``--teacher`` / ``--student``): never deleted; ``overwrite``
            is refused when one of them would be.

    Raises:
        FerPiError: ``out`` holds a run and neither ``resume`` nor ``overwrite`` is set, both are
            set, ``out`` is a file, or ``overwrite`` would delete a file in ``keep``.
    """
    out = Path(out)
    if resume and overwrite:
        raise FerPiError("--resume and --overwrite: give one of them, not both")
    if out.exists() and not out.is_dir():
        raise FerPiError(f"--out {out}: exists and is not a folder")
    if resume or not holds_run(out):
        return
    found = run_files(out)
    if not overwrite:
        names = ", ".join(sorted({str(p.relative_to(out)) for p in found})[:4])
        raise FerPiError(f"--out {out}: holds an earlier run ({names}); give --resume to continue it or "
                         "--overwrite to replace it (or choose another --out)")
    kept = {Path(k).resolve() for k in keep if k}
    clash = [p for p in found if p.resolve() in kept]
    if clash:
        raise FerPiError(f"--overwrite would delete {clash[0]}, which this run starts from; "
                         "choose another --out")
    if not _is_main_process():
        return
    for path in found:
        path.unlink()
    for sub in ("pretrain/eval", "eval", "pretrain"):
        d = out / sub
        if d.is_dir() and not any(d.iterdir()):
            d.rmdir()


# ------------------------------------------------------------------------------ fingerprints
def _describe(fp: Mapping[str, Any], keys: Sequence[str]) -> str:
    parts = []
    for k in keys:
        if k == "data":
            digest = str(fp.get("data") or "")[7:19] or "?"
            parts.append(f"data {fp.get('data_path') or '?'} (manifest sha256 {digest})")
        else:
            parts.append(f"{k} {fp.get(k)}")
    return ", ".join(parts)


def check_pretraining(checkpoint: str | os.PathLike, cfg: TrainConfig) -> None:
    """Refuse to build on a pretraining made with other data, arch or seed than ``cfg``.

    Checkpoints written before fingerprints existed are compared on their config's arch and seed.

    Raises:
        FerPiError: one line naming the checkpoint and both settings.
    """
    from .checkpoint import load_checkpoint

    payload = load_checkpoint(checkpoint)
    old = payload.get("fingerprint")
    if not isinstance(old, Mapping):
        config = payload.get("config") or {}
        old = {"data": "", "data_path": config.get("data", ""), "arch": config.get("arch"),
               "seed": config.get("seed")}
    new = pretraining_fingerprint(cfg)
    differ = [k for k in ("data", "arch", "seed") if old.get(k) not in (None, "") and old.get(k) != new[k]]
    if differ:
        raise FerPiError(f"{checkpoint}: pretrained with {_describe(old, differ)}, but this run has "
                         f"{_describe(new, differ)}; pretrain again for this data, arch and seed "
                         "(or give the matching --data/--arch/--seed)")


# ------------------------------------------------------------------------------ configs
def pretrained_settings(checkpoint: str | os.PathLike) -> dict[str, Any]:
    """The :data:`INHERITED` settings of a pretrained checkpoint's config."""
    from .checkpoint import load_checkpoint

    config = load_checkpoint(checkpoint).get("config") or {}
    return {k: config[k] for k in INHERITED if k in config}


def pretrained_from_run(pretrained_run: str | os.PathLike | None, teacher: str | os.PathLike | None = None,
                        student: str | os.PathLike | None = None) -> tuple[Path | None, Path | None]:
    """``(teacher, student)`` checkpoints: explicit ones (files or run folders) win over those of a
    `fer-pi pretrain` folder."""
    from .checkpoint import resolve_checkpoint

    teacher = resolve_checkpoint(teacher, "teacher") if teacher else None
    student = resolve_checkpoint(student, "student") if student else None
    if pretrained_run is not None:
        run = Path(pretrained_run)
        for name in ("teacher.pt", "student.pt"):
            if not (run / name).is_file():
                raise FerPiError(f"--pretrained-run {run}: {name} not found "
                                 "(expected the output folder of `fer-pi pretrain`)")
        teacher = teacher or run / "teacher.pt"
        student = student or run / "student.pt"
    return teacher, student


def resume_config(out: str | os.PathLike, cfg: TrainConfig, explicit: Mapping[str, Any]) -> TrainConfig:
    """The config of the run in ``out`` (its ``config.json``), with the :data:`RESUMABLE` settings
    given explicitly now taking effect."""
    out = Path(out)
    saved = out / "config.json"
    if not saved.is_file():  # `train` interrupted while pretraining inside the run
        saved = out / "pretrain" / "config.json"
    if not saved.is_file():
        raise FerPiError(f"--resume: {out / 'config.json'} not found (nothing to resume in {out})")
    keep = {k: getattr(cfg, k) for k in RESUMABLE if k in explicit}
    return TrainConfig.load(saved).replace(**keep)


def configure(method: str, size: str | None, explicit: Mapping[str, Any], overrides: Sequence[str] = (),
              out: str | os.PathLike | None = None, resume: bool = False,
              pretrained: str | os.PathLike | None = None, config: str | os.PathLike | None = None,
              method_given: bool = True) -> TrainConfig:
    """Build a run's config: size preset < method preset < ``explicit`` < ``overrides`` (``--set``).

    Args:
        method: Table-1 preset (``resnet`` for a pretraining).
        size: size preset name or None.
        explicit: options given explicitly (None values already dropped).
        overrides: ``["key=value", ...]``.
        out, resume: with ``resume`` the saved config of ``out`` wins (:func:`resume_config`).
        pretrained: checkpoint the run starts from; its :data:`INHERITED` settings apply unless
            given explicitly.
        config: a config JSON to start from (a run's ``config.json``, ``fer-pi tune``'s
            ``best_config.json``) instead of the presets; ``size`` and ``method`` then apply only
            when given (``method_given``).
    """
    values = dict(explicit)
    if pretrained is not None:
        for key, value in pretrained_settings(pretrained).items():
            values.setdefault(key, value)
    if config is not None:
        cfg = TrainConfig.load(config)
        if size is not None:
            cfg = cfg.replace(**SIZE_PRESETS[size])
        if method_given:
            cfg.set_method(method)
        cfg = cfg.replace(**values).apply_overrides(list(overrides))
    else:
        cfg = TrainConfig.from_preset(method, size, **values).apply_overrides(list(overrides))
    if resume:
        if out is None:
            raise FerPiError("--resume needs --out")
        cfg = resume_config(out, cfg, values)
    return cfg


# ------------------------------------------------------------------------------ launching
def launch(phase: Phase, cfg: TrainConfig, out: str | os.PathLike, resume: bool = False, overwrite: bool = False,
           progress: bool = True) -> Path:
    """Run a phase into ``out`` after the safety checks; returns the run folder.

    ``pretrain``: :func:`fer_pi.engine.pretrain`; ``train``: pretrains into ``out/pretrain`` when
    no teacher/student is given, then fine-tunes (:func:`fer_pi.engine.train`); ``finetune``:
    fine-tuning only.

    Raises:
        FerPiError: ``out`` holds a run (see :func:`prepare_run_dir`), a pretraining made with
            other data/arch/seed would be reused (:func:`check_pretraining`), the loss diverged
            (:class:`fer_pi.guards.NonFiniteError`), or any configuration error.
    """
    from . import engine

    out = Path(out)
    prepare_run_dir(out, resume=resume, overwrite=overwrite, keep=[cfg.teacher, cfg.student])
    for ckpt in dict.fromkeys(c for c in (cfg.teacher, cfg.student) if c):
        check_pretraining(ckpt, cfg)
    if phase == "pretrain":
        if resume and (out / "last.pt").is_file():
            check_pretraining(out / "last.pt", cfg)
        return engine.pretrain(cfg, out, resume=resume, progress=progress)
    inner = out / "pretrain" / "student.pt"
    if not cfg.student and inner.is_file():  # `train` reuses its own pretraining (resume)
        check_pretraining(inner, cfg)
    if phase == "finetune":
        return engine.finetune(cfg, out, resume=resume, progress=progress)
    return engine.train(cfg, out, resume=resume, progress=progress)


__all__ = ["EVAL_FILES", "INHERITED", "RESUMABLE", "RUN_FILES", "RUN_MARKERS", "check_pretraining", "configure",
           "holds_run", "launch", "prepare_run_dir", "pretrained_from_run",
           "pretrained_settings", "resume_config", "run_files"]
