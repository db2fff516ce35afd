"""On-disk cache of decoded, edge-bled templates, named by a hash of the template's file bytes.

Loading the shipped library means decoding 72 PNGs and bleeding their transparent pixels (a
Euclidean distance transform each): about 1 s. With the cache, a load reads one ``.npy`` per
template instead (tens of milliseconds); a changed file has another hash, so an entry is never
stale. Folder: ``$OCCSYNTH_CACHE_DIR/templates`` (``OCCSYNTH_CACHE_DIR=off`` disables the cache),
else ``$XDG_CACHE_HOME/occlusion_synth/templates``, else ``~/.cache/occlusion_synth/templates``.
An unwritable folder only costs the speed-up; entries are written atomically (tmp + rename).
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

from ..io import CACHE_ENV, user_cache_dir  # noqa: F401 (CACHE_ENV: part of this module's interface)

# bump the version when what is cached (decode or bleed) changes
CACHE_FORMAT = b"occlusion_synth template rgba v1\0"
# template files above this size are decoded directly, never hashed
MAX_CACHED_FILE = 64 << 20


def cache_dir() -> Optional[Path]:
    """The folder of cached templates, or None when the cache is switched off."""
    return user_cache_dir("templates")


def cache_key(files: Sequence[Path]) -> Optional[str]:
    """SHA-256 over the cache format, and the names and bytes of ``files``; None if one is
    unreadable or too large."""
    digest = hashlib.sha256(CACHE_FORMAT)
    for f in files:
        try:
            if not f.is_file() or f.stat().st_size > MAX_CACHED_FILE:
                return None
            digest.update(f.name.encode() + b"\0" + f.read_bytes() + b"\0")
        except OSError:
            return None
    return digest.hexdigest()


def cached_rgba(files: Sequence[Path], load: Callable[[], np.ndarray]) -> np.ndarray:
    """``load()`` (decode + bleed of ``files``), served from the cache when an entry exists.

    Args:
        files: the files the result depends on (image, then its mask file if any).
        load: makes the ``(h, w, 4) uint8`` array; its errors propagate (nothing is cached).

    Returns:
        ``(h, w, 4) uint8`` straight alpha.
    """
    folder = cache_dir()
    key = cache_key(files) if folder is not None else None
    if key is None:
        return load()
    entry = folder / f"{key}.npy"
    if entry.is_file():
        try:
            rgba = np.load(entry, allow_pickle=False)
            if rgba.dtype == np.uint8 and rgba.ndim == 3 and rgba.shape[2] == 4:
                return rgba
        except (OSError, ValueError, EOFError):
            pass  # a damaged entry: rebuilt below
    rgba = load()
    tmp = entry.with_name(f".{entry.stem}.{os.getpid()}.tmp")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as fh:
            np.save(fh, np.ascontiguousarray(rgba), allow_pickle=False)
        os.replace(tmp, entry)
    except OSError:
        try:
            tmp.unlink()
        except OSError:
            pass
    return rgba
