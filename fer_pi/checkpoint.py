"""Atomic, ``weights_only``-loadable checkpoints.

A checkpoint is a plain dict: ``config`` (dict), ``phase`` ("pretrain" | "finetune"), ``epoch``
(epochs completed), ``student`` / ``teacher`` / ``discriminator`` / ``decoder`` (state dicts, any may
be absent), ``optim`` / ``sched`` (dicts of optimiser / scheduler states), ``scaler`` (AMP scaler
states), ``rng`` (torch/numpy/python states as tensors and lists, see :mod:`fer_pi.utils`),
``metrics`` (dict of floats), ``best`` (best validation accuracy so far).
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch

from occlusion_synth.io import atomic_write_bytes

from .errors import FerPiError


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` with ``torch.save`` atomically (temporary file, fsync, ``os.replace``).

    A crash leaves the previous checkpoint or the complete new one, never a partial file.
    """
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
