"""Atomic, ``weights_only``-loadable checkpoints.

A checkpoint is a plain dict: ``config`` (dict), ``phase`` ("pretrain" | "finetune"), ``epoch``
(epochs completed), ``student`` / ``teacher`` / ``discriminator`` / ``decoder`` (state dicts, any may
be absent), ``optim`` / ``sched`` (dicts of optimiser / scheduler states), ``scaler`` (AMP scaler
states), ``rng`` (torch/numpy/python states as tensors and lists, see :mod:`fer_pi.utils`),
``metrics`` (dict of floats), ``best`` (best validation accuracy so far), ``fingerprint``
(pretraining checkpoints: what they were made from, :func:`pretraining_fingerprint`).
"""
from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from occlusion_synth.io import atomic_write_bytes

from .errors import FerPiError

if TYPE_CHECKING:
    from .config import TrainConfig


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` with ``torch.save`` atomically (temporary file, fsync, ``os.replace``).

    A crash leaves the previous checkpoint or the complete new one, never a partial file.

    Raises:
        fer_pi.guards.NonFiniteError: a network's weights or a ``loss*`` metric are NaN or
            infinite; nothing is written (the previous file at ``path`` stays).
    """
    from .guards import check_payload

    check_payload(payload, str(path))
    buf = io.BytesIO()
    torch.save(payload, buf)
    atomic_write_bytes(path, buf.getvalue(), fsync=True)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True`` (no arbitrary code runs).

    Raises:
        FerPiError: the file is missing, truncated/corrupt, or not a fer_pi checkpoint dict.
    """
    p = Path(path)
    if not p.is_file():
        raise FerPiError(f"{p}: checkpoint not found")
    try:
        payload = torch.load(p, map_location=map_location, weights_only=True)
    except Exception as exc:
        raise FerPiError(f"{p}: corrupt or unreadable checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(payload, dict) or not ({"student", "teacher"} & set(payload)):
        raise FerPiError(f"{p}: not a fer_pi checkpoint (no 'student' or 'teacher' weights)")
    return payload


#: checkpoint files tried, in order, when a run folder is given instead of a file
RUN_CHECKPOINTS: dict[str, tuple[str, ...]] = {
    "student": ("best.pt", "student.pt", "last.pt"),
    "teacher": ("teacher.pt", "last.pt"),
}


def resolve_checkpoint(path: str | os.PathLike, which: str = "student") -> Path:
    """A checkpoint file, or the one a run folder holds for ``which`` (:data:`RUN_CHECKPOINTS`).

    ``fer-pi train --out RUN`` folders give ``best.pt``, ``fer-pi pretrain`` folders ``student.pt``
    (``teacher.pt`` for the teacher).

    Raises:
        FerPiError: the path does not exist, or the folder holds none of the expected files.
    """
    p = Path(path)
    if p.is_dir():
        names = RUN_CHECKPOINTS.get(which, RUN_CHECKPOINTS["student"])
        for name in names:
            if (p / name).is_file():
                return p / name
        raise FerPiError(f"{p}: no checkpoint in this folder (looked for {', '.join(names)})")
    if not p.exists():
        raise FerPiError(f"{p}: checkpoint not found")
    return p


def data_fingerprint(data: str | os.PathLike) -> str:
    """``"sha256:<hex>"`` of a data manifest (``OUT`` or ``OUT/manifest.csv``).

    A folder without a ``manifest.csv`` (e.g. shards) is hashed by its file names and sizes.
    ``""`` when ``data`` does not exist.
    """
    p = Path(data)
    if p.is_dir() and (p / "manifest.csv").is_file():
        p = p / "manifest.csv"
    h = hashlib.sha256()
    if p.is_file():
        with open(p, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    elif p.is_dir():
        for f in sorted(x for x in p.rglob("*") if x.is_file()):
            h.update(f"{f.relative_to(p).as_posix()}\0{f.stat().st_size}\n".encode())
    else:
        return ""
    return "sha256:" + h.hexdigest()


def pretraining_fingerprint(cfg: "TrainConfig") -> dict[str, Any]:
    """What a pretraining depends on: ``{"data": sha256 of the manifest, "data_path", "arch", "seed"}``.

    Recorded in every pretraining checkpoint (``teacher.pt``, ``student.pt``, ``last.pt``).
    """
    return {"data": data_fingerprint(cfg.data) if cfg.data else "", "data_path": str(cfg.data),
            "arch": cfg.arch, "seed": int(cfg.seed)}
