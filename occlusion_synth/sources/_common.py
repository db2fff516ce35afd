"""Small helpers shared by the dataset readers.

- :data:`IMAGE_EXTENSIONS`: file suffixes (lower case) a reader treats as images.
- :func:`image_loader`: the lazy ``Sample.load`` callable for an image file.
- :func:`safe_id`: a filesystem-safe sample id from arbitrary text (a short hash keeps it unique).
- :func:`require_dir` / :func:`require_file`: layout checks that raise ``DatasetFormatError``
  naming the expected path.
- :func:`iter_csv_rows`: CSV rows that survive a bad row (a field over the size limit, a NUL
  byte): the bad row comes back as ``{CSV_ERROR: message}`` and reading goes on.
- :func:`finite_number`: ``float(text)`` that refuses ``inf``, ``nan`` and ``1e400``.
"""
from __future__ import annotations

import csv
import functools
import hashlib
import math
import os
import re
import unicodedata
from pathlib import Path
from typing import IO, Callable, Iterator, Union

import numpy as np

from ..errors import DatasetFormatError
from ..io import IMAGE_EXTENSIONS, read_image  # noqa: F401  (IMAGE_EXTENSIONS re-exported for the readers)

PathLike = Union[str, os.PathLike]


_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def image_loader(path: PathLike) -> Callable[[], np.ndarray]:
    """Return a zero-argument callable reading ``path`` as ``(H, W, 3) uint8 RGB`` when called.

    The file is not touched until the call (readers stream; pixels load in the worker that needs
    them). The callable raises :class:`~occlusion_synth.errors.ImageReadError` naming the file.
    """
    # a partial (not a closure) pickles, so worker processes decode their own images
    return functools.partial(read_image, Path(path))


def short_hash(text: str, n: int = 8) -> str:
    """First ``n`` hex digits of the SHA-1 of ``text`` (UTF-8): stable across runs and machines."""
    return hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()[:n]


def safe_id(text: str, key: str | None = None) -> str:
    """Turn ``text`` into an ASCII id usable as a file stem on any filesystem.

    Accents are folded (``café`` -> ``cafe``), other characters outside ``[A-Za-z0-9_.-]`` become
    ``_``. When that changes the text, ``_`` plus a short hash of ``key`` (default ``text``) is
    appended, so two different names that sanitise alike still get different ids.

    Args:
        text: the readable part of the id, e.g. ``"train_happy_IMG 01"``.
        key: what the hash suffix is computed from (e.g. the file's relative path); ``text`` if None.
    """
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    cleaned = _UNSAFE.sub("_", folded).strip("._") or "x"
    if cleaned != text:
        cleaned = f"{cleaned}_{short_hash(key if key is not None else text)}"
    return cleaned


def require_dir(path: Path, what: str) -> Path:
    """Return ``path`` if it is a directory, else raise ``DatasetFormatError`` naming it as ``what``."""
    if not path.is_dir():
        state = "is not a directory" if path.exists() else "does not exist"
        raise DatasetFormatError(f"{what}: expected a directory at {path}, but it {state}")
    return path


def require_file(path: Path, what: str) -> Path:
    """Return ``path`` if it is a file, else raise ``DatasetFormatError`` naming it as ``what``."""
    if not path.is_file():
        state = "is not a file" if path.exists() else "does not exist"
        raise DatasetFormatError(f"{what}: expected a file at {path}, but it {state}")
    return path


CSV_ERROR = "__csv_error__"


def iter_csv_rows(fh: IO[str], **kwargs) -> Iterator[tuple[int, dict]]:
    """``(line number, row dict)`` of a CSV opened as ``fh`` (``csv.DictReader`` options in ``kwargs``).

    A row the csv module cannot parse (a field over ``csv.field_size_limit()``, 128 KiB by
    default; a NUL byte) is yielded as ``{CSV_ERROR: message}`` and reading continues with the
    next line, so one hostile row becomes one skipped record instead of ending the stream.
    """
    reader = csv.DictReader(fh, **kwargs)
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield reader.line_num, {CSV_ERROR: f"malformed row: {exc}"}
            continue
        yield reader.line_num, row


def finite_number(text) -> float:
    """``float(text)``, raising ``ValueError`` for text that is not a finite number (inf, nan, 1e400)."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text!r} is not a finite number")
    return value
