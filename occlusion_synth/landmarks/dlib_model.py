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

import os
import tempfile
from pathlib import Path

from ..errors import LandmarkBackendError
from ..io import CACHE_ENV, atomic_write_bytes, user_cache_dir

FULL_DEPTH = 15  # cascade levels of shape_predictor_68_face_landmarks.dat


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
    try:
        st = source.stat()
    except OSError as exc:
        raise LandmarkBackendError(f"dlib model {source}: {exc.strerror or exc}") from None
    name = f"{source.stem}.depth{depth}.{st.st_size}.{st.st_mtime_ns}.dat"
    folders = _cache_folders()
    for folder in folders:
        if (folder / name).is_file():
            return folder / name
    try:
        data = truncate(source.read_bytes(), depth)
    except OSError as exc:
        raise LandmarkBackendError(f"dlib model {source}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise LandmarkBackendError(f"dlib model {source}: {exc}") from None
    for folder in folders:
        try:  # temporary file + rename: processes building it at once never see a partial file
            atomic_write_bytes(folder / name, data)
            return folder / name
        except OSError:
            continue
    raise LandmarkBackendError(
        f"cannot write the {depth}-level predictor (tried {', '.join(map(str, folders))}); set "
        f"{CACHE_ENV} to a writable folder or use cascade_depth={FULL_DEPTH}")
