"""Seeding, RNG state capture (checkpoint-safe), device and mixed-precision helpers, logging."""
from __future__ import annotations

import contextlib
import logging
import random
import sys
from typing import Any, Iterator

import numpy as np
import torch

from .errors import FerPiError

log = logging.getLogger("fer_pi")


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def get_rng_state() -> dict[str, Any]:
    """RNG states as tensors/lists only, so a checkpoint stays ``weights_only``-loadable."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    py = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "python": {"version": py[0], "state": list(py[1]), "gauss": py[2]},
    }
    if torch.cuda.is_available():
        state["cuda"] = [s for s in torch.cuda.get_rng_state_all()]
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`get_rng_state` captured."""
    torch.set_rng_state(state["torch"].cpu())
    npst = state["numpy"]
    np.random.set_state(("MT19937", npst["keys"].numpy().astype(np.uint32), npst["pos"],
                         npst["has_gauss"], npst["cached"]))
    py = state["python"]
    random.setstate((py["version"], tuple(py["state"]), py["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` -> CUDA when available else CPU; an explicit CUDA request without CUDA is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise FerPiError(f"--device {name!r}: not a torch device (cpu, cuda, cuda:N, auto)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise FerPiError(f"--device {name}: CUDA is not available on this machine (use cpu or auto)")
    return dev


def amp_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``--amp`` on ``device`` (None: full precision).

    fp16 autocast is CUDA-only; bf16 works on CPU too but is slower there, so it is honoured only
    when asked for.
    """
    if amp == "off":
        return None
    if amp == "fp16":
        if device.type != "cuda":
            raise FerPiError("--amp fp16: needs a CUDA device (use bf16 or off on CPU)")
        return torch.float16
    if amp == "bf16":
        return torch.bfloat16
    raise FerPiError(f"--amp {amp!r}: must be off, bf16 or fp16")


@contextlib.contextmanager
def autocast(device: torch.device, dtype: torch.dtype | None) -> Iterator[None]:
    """``torch.autocast`` when ``dtype`` is set, otherwise nothing."""
    if dtype is None:
        yield
    else:
        with torch.autocast(device_type=device.type, dtype=dtype):
            yield


def make_scaler(device: torch.device, dtype: torch.dtype | None) -> torch.amp.GradScaler:
    """A gradient scaler, enabled only for fp16 (bf16 has fp32's range and needs none)."""
    return torch.amp.GradScaler(device.type, enabled=dtype is torch.float16)


class _StderrHandler(logging.Handler):
    """Writes to whatever ``sys.stderr`` is *now* (click's test runner swaps it per invocation)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
        except ValueError:  # a closed stream: nothing sensible to do
            pass


def setup_logging(level: int = logging.INFO) -> None:
    """One-line messages on stderr for the ``fer_pi`` logger (idempotent)."""
    if not log.handlers:
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
    log.setLevel(level)
    log.propagate = False
