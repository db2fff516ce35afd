"""dlib's 68-point shape predictor cut to its first cascade levels, built once and cached.

The predictor is a cascade of 15 levels of 500 regression trees each; every tree adds one of its
16 leaf vectors (136 floats) to the shape. A call therefore reads 7,500 leaf vectors scattered
over the 99 MB model, one cache miss after another: on a 2-core EPYC it costs 1.4-2.7 ms,
the largest single cost of a pair made from an aligned face. Later levels refine earlier ones by
ever smaller steps, so the first levels alone give almost the same points at a fraction of the
cost (``benchmarks/predictor_cascades.py``; docs/landmarks.md, "Cascade depth").

:func:`cascade_model` writes a copy of the installed model that keeps the first ``depth``
levels (the same trees, bytes copied unchanged) and returns its path; dlib loads it like the
original. The copy lives in ``$OCCSYNTH_CACHE_DIR/models`` (else ``$XDG_CACHE_HOME`` or
``~/.cache``, ``occlusion_synth/models``; a temporary folder when that is not writable), is
named after the source file's size and modification time, and is written atomically, so
processes building it at once never see a partial file.

File format (dlib's ``serialize``): integers are one control byte (low nibble: byte count,
0x80: negative) then little-endian bytes; a float is two integers (mantissa, exponent); a matrix
is ``-rows, -cols`` then its elements; a ``std::vector`` is its length then its items. A
shape predictor is ``version, initial_shape, forests, anchor_idx, deltas``: ``forests`` holds
one vector of trees per level, a tree is ``splits`` (``idx1, idx2, thresh`` each) then
``leaf_values`` (matrices), and ``anchor_idx``/``deltas`` hold one vector per level.
"""
from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from ..errors import LandmarkBackendError
from ..io import CACHE_ENV, atomic_write_bytes, user_cache_dir

FULL_DEPTH = 15  # cascade levels of shape_predictor_68_face_landmarks.dat
COMPACT_VERSION = 1  # layout of the arrays written by compact_model (part of the cache file name)


class _Reader:
    """Walks dlib's serialized integers in ``data`` (positions only, except where read)."""

    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def int(self) -> int:
        control = self.data[self.pos]
        n = control & 0x0F
        if n == 0 or n > 8 or control & 0x70:
            raise ValueError(f"bad integer at byte {self.pos}")
        value = int.from_bytes(self.data[self.pos + 1:self.pos + 1 + n], "little")
        self.pos += 1 + n
        return -value if control & 0x80 else value

    def skip(self, count: int) -> None:
        data, pos = self.data, self.pos
        for _ in range(count):
            pos += 1 + (data[pos] & 0x0F)
        self.pos = pos

    def matrix(self) -> None:
        rows, cols = -self.int(), -self.int()
        if rows < 0 or cols < 0:
            raise ValueError("old matrix format")
        self.skip(2 * rows * cols)  # floats: mantissa + exponent

    def vector(self, item) -> list[tuple[int, int]]:
        """``(start, end)`` byte spans of the items of a vector, each walked by ``item()``."""
        spans = []
        for _ in range(self.count()):
            start = self.pos
            item()
            spans.append((start, self.pos))
        return spans

    def count(self) -> int:
        n = self.int()
        if not 0 <= n < 1 << 24:
            raise ValueError(f"bad length {n}")
        return n


def pack_int(value: int) -> bytes:
    """dlib's encoding of one integer."""
    sign = 0x80 if value < 0 else 0
    body = abs(value).to_bytes(max(1, (abs(value).bit_length() + 7) // 8), "little")
    return bytes([len(body) | sign]) + body


def truncate(data: bytes, depth: int) -> bytes:
    """The serialized predictor ``data`` with only its first ``depth`` cascade levels.

    Raises:
        ValueError: ``data`` is not a serialized dlib shape predictor, or has fewer levels.
    """
    r = _Reader(data)
    try:
        if r.int() != 1:
            raise ValueError("unknown shape predictor version")
        r.matrix()  # initial_shape
        head = r.pos

        def tree() -> None:
            for _ in range(r.count()):  # splits
                r.skip(2)  # idx1, idx2
                r.skip(2)  # thresh
            for _ in range(r.count()):  # leaf_values
                r.matrix()

        levels = r.vector(lambda: r.vector(tree))
        anchors = r.vector(lambda: r.skip(r.count()))
        deltas = r.vector(lambda: r.skip(4 * r.count()))  # vector<float,2>: x, y
    except (IndexError, ValueError) as exc:
        raise ValueError(f"not a dlib shape predictor file ({exc})") from None
    if r.pos != len(data) or not len(levels) == len(anchors) == len(deltas):
        raise ValueError("not a dlib shape predictor file (unexpected layout)")
    if not 1 <= depth <= len(levels):
        raise ValueError(f"cascade depth must be 1..{len(levels)}, got {depth}")
    keep = pack_int(depth)
    return b"".join([data[:head], keep, *(data[s:e] for s, e in levels[:depth]),
                     keep, *(data[s:e] for s, e in anchors[:depth]),
                     keep, *(data[s:e] for s, e in deltas[:depth])])


def _cache_folders() -> list[Path]:
    """The user's model cache (:func:`occlusion_synth.io.user_cache_dir`, unless switched off),
    then a folder of this user's in the temp folder."""
    uid = os.getuid() if hasattr(os, "getuid") else "user"
    own = user_cache_dir("models")
    return ([own] if own is not None else []) + [Path(tempfile.gettempdir()) / f"occlusion_synth-{uid}" / "models"]


def _cache_name(source: Path, tag: str, suffix: str) -> str:
    """The cache file name of what is built from ``source``: named after its size and modification
    time, so a reinstalled model never meets a stale copy."""
    try:
        st = source.stat()
    except OSError as exc:
        raise LandmarkBackendError(f"dlib model {source}: {exc.strerror or exc}") from None
    return f"{source.stem}.{tag}.{st.st_size}.{st.st_mtime_ns}.{suffix}"


def _cached(name: str) -> Optional[Path]:
    """The first cache folder's file ``name``, or None."""
    return next((folder / name for folder in _cache_folders() if (folder / name).is_file()), None)


def _convert(source: Path, convert: Callable[[bytes], Any]) -> Any:
    """``convert(bytes of source)``, its errors as one-line :class:`LandmarkBackendError`."""
    try:
        return convert(source.read_bytes())
    except OSError as exc:
        raise LandmarkBackendError(f"dlib model {source}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise LandmarkBackendError(f"dlib model {source}: {exc}") from None


def _store(name: str, data: bytes) -> Optional[Path]:
    """Write ``data`` as ``name`` in the first writable cache folder (temporary file + rename:
    processes building it at once never see a partial file); None when none is writable."""
    for folder in _cache_folders():
        try:
            atomic_write_bytes(folder / name, data)
            return folder / name
        except OSError:
            continue
    return None


def cascade_model(source: str | os.PathLike, depth: int) -> Path:
    """Path of a predictor file holding the first ``depth`` levels of ``source`` (``source``
    itself for its full depth); built on first use, then read from the cache.

    Raises:
        LandmarkBackendError: ``source`` is unreadable or not a shape predictor, ``depth`` is out
            of range, or no cache folder is writable.
    """
    source = Path(source)
    if depth == FULL_DEPTH:
        return source
    name = _cache_name(source, f"depth{depth}", "dat")
    path = _cached(name) or _store(name, _convert(source, lambda data: truncate(data, depth)))
    if path is None:
        raise LandmarkBackendError(
            f"cannot write the {depth}-level predictor (tried {', '.join(map(str, _cache_folders()))}); set "
            f"{CACHE_ENV} to a writable folder or use cascade_depth={FULL_DEPTH}")
    return path


_SIZE_MASKS = np.array([0] + [(1 << (8 * k)) - 1 for k in range(1, 8)] + [0xFFFFFFFFFFFFFFFF], np.uint64)


def _read_lanes(data: np.ndarray, starts: np.ndarray, count: int) -> np.ndarray:
    """``count`` consecutive serialized integers from every start position at once:
    ``(len(starts), count) int64``. Each step decodes one integer in every lane (the 8 bytes
    after each control byte read as one little-endian word, masked to the integer's length), so
    a model's ~4,400 integers per tree take ~4,400 numpy steps for all its trees together."""
    pos = starts.astype(np.int64)
    out = np.empty((len(pos), count), np.int64)
    padded = np.concatenate([data, np.zeros(9, np.uint8)])
    windows = np.lib.stride_tricks.as_strided(padded, shape=(len(data) + 1, 8), strides=(1, 1), writeable=False)
    end = len(data)
    for k in range(count):
        if (pos >= end).any():
            raise ValueError(f"integer past the end of the data at step {k}")
        control = data[pos]
        size = control & 0x0F
        if ((size == 0) | (size > 8) | (control & 0x70 != 0)).any():
            raise ValueError(f"bad integer at step {k}")
        value = (windows[pos + 1].view(np.uint64)[:, 0] & _SIZE_MASKS[size]).astype(np.int64)
        out[:, k] = np.where(control & 0x80 != 0, -value, value)
        pos += 1 + size
    if (pos > end).any():
        raise ValueError("integer past the end of the data")
    return out


def _floats(pairs: np.ndarray) -> np.ndarray:
    """dlib floats from their ``(mantissa, exponent)`` integer pairs along the last axis."""
    return np.ldexp(pairs[..., 0::2].astype(np.float64), pairs[..., 1::2].astype(np.int32))


def compact_arrays(data: bytes, depth: int) -> dict:
    """The first ``depth`` levels of a serialized 68-point predictor as arrays, in the layout
    ``_shape68.predict`` reads: ``initial (136,) float32``, per level ``anchors (F,) int32``,
    ``deltas (F, 2) float32``, ``splits (T, N, 2) int32``, ``thresholds (T, N) float32`` and
    ``leaves (T, N + 1, 136) int16`` with ``scales (levels,) float32`` (leaf value = int16 x
    scale; one scale per level, the largest leaf value maps to 32767).

    Raises:
        ValueError: ``data`` is not a 68-point predictor with complete binary trees.
    """
    r = _Reader(data)
    try:
        if r.int() != 1:
            raise ValueError("unknown shape predictor version")
        rows, cols = -r.int(), -r.int()
        init_pos = r.pos
        r.skip(2 * rows * cols)

        def tree() -> None:
            for _ in range(r.count()):
                r.skip(4)
            for _ in range(r.count()):
                r.matrix()

        levels = [r.vector(tree) for _ in range(r.count())]  # (start, end) of every tree
        anchors = r.vector(lambda: r.skip(r.count()))
        deltas = r.vector(lambda: r.skip(4 * r.count()))
    except (IndexError, ValueError) as exc:
        raise ValueError(f"not a dlib shape predictor file ({exc})") from None
    if rows * cols != 136 or not 1 <= depth <= len(levels):
        raise ValueError(f"not a 68-point predictor with {depth} levels")
    d = np.frombuffer(data, np.uint8)
    initial = _floats(_read_lanes(d, np.array([init_pos]), 272))[0].astype(np.float32)
    n_trees = len(levels[0])
    n_nodes = int(_read_lanes(d, np.array([levels[0][0][0]]), 1)[0, 0])
    if any(len(spans) != n_trees for spans in levels[:depth]) or not 1 <= n_nodes < 256:
        raise ValueError("trees of unexpected shape")
    per_tree = 1 + 4 * n_nodes + 1 + (n_nodes + 1) * (2 + 272)
    # every tree of every level kept, decoded together (one lane each)
    v = _read_lanes(d, np.array([start for spans in levels[:depth] for start, _ in spans]), per_tree)
    v = v.reshape(depth, n_trees, per_tree)
    leaf_part = v[..., 2 + 4 * n_nodes:].reshape(depth, n_trees, n_nodes + 1, 274)
    if ((v[..., 0] != n_nodes).any() or (v[..., 1 + 4 * n_nodes] != n_nodes + 1).any()
            or (leaf_part[..., 0] != -136).any() or (leaf_part[..., 1] != -1).any()):
        raise ValueError("trees of unexpected shape")
    split = v[..., 1:1 + 4 * n_nodes].reshape(depth, n_trees, n_nodes, 4)
    leaves = _floats(leaf_part[..., 2:])
    # one lane per level for the feature anchors and their offsets (x, y floats)
    a_starts, d_starts = np.array([s for s, _ in anchors[:depth]]), np.array([s for s, _ in deltas[:depth]])
    n = _read_lanes(d, a_starts, 1)[:, 0]
    if (n != n[0]).any() or (_read_lanes(d, d_starts, 1)[:, 0] != n).any():
        raise ValueError("levels with different feature counts")
    n = int(n[0])
    out = {"initial": initial, "splits": split[..., :2].astype(np.int32),
           "thresholds": _floats(split[..., 2:4])[..., 0].astype(np.float32),
           "anchors": _read_lanes(d, a_starts, 1 + n)[:, 1:].astype(np.int32),
           "deltas": _floats(_read_lanes(d, d_starts, 1 + 4 * n)[:, 1:]).reshape(depth, n, 2).astype(np.float32)}
    scales = np.maximum(np.abs(leaves).reshape(depth, -1).max(1), 1e-30) / 32767.0
    out["leaves"] = np.rint(leaves / scales[:, None, None, None]).astype(np.int16)
    out["scales"] = scales.astype(np.float32)
    arrays = {k: np.ascontiguousarray(v) for k, v in out.items()}
    if (arrays["anchors"] < 0).any() or (arrays["anchors"] >= 68).any() or (arrays["splits"] < 0).any() \
            or (arrays["splits"] >= arrays["anchors"].shape[1]).any():
        raise ValueError("feature index out of range")
    return arrays


def _compact_name(source: Path, depth: int) -> str:
    return _cache_name(source, f"compact{COMPACT_VERSION}.depth{depth}", "npz")


def _build_compact(source: Path, depth: int, name: str) -> dict:
    """Build the arrays and store them as ``name`` in the cache (when no cache folder is
    writable, the next process builds them again)."""
    arrays = _convert(source, lambda data: compact_arrays(data, depth))
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    _store(name, buf.getvalue())
    return arrays


def prepare_compact(source: str | os.PathLike, depth: int) -> None:
    """Build :func:`compact_model`'s cached file when it is missing, without loading it (the
    main process does this once, so worker processes only load it)."""
    source = Path(source)
    name = _compact_name(source, depth)
    if _cached(name) is None:
        _build_compact(source, depth, name)


def compact_model(source: str | os.PathLike, depth: int) -> dict:
    """The arrays of :func:`compact_arrays` for the first ``depth`` levels of ``source``, built
    once (a few seconds) and then loaded from the model cache (``.npz``, named like
    :func:`cascade_model`'s copies). Arrays are read-only.

    Raises:
        LandmarkBackendError: ``source`` is unreadable or not a 68-point predictor, or the cached
            file is damaged (it names the file to delete).
    """
    source = Path(source)
    name = _compact_name(source, depth)
    path = _cached(name)
    if path is not None:
        try:
            with np.load(path) as z:
                arrays = {k: z[k] for k in z.files}
        except Exception as exc:
            raise LandmarkBackendError(f"cached model {path} could not be read ({type(exc).__name__}); "
                                       "delete it (it is rebuilt on the next run)") from None
    else:
        arrays = _build_compact(source, depth, name)
    for a in arrays.values():
        a.flags.writeable = False
    return arrays
