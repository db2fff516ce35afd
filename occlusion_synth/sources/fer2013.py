"""FER2013 reader: the Kaggle ``fer2013.csv`` (48x48 grayscale faces stored as pixel strings).

Layout::

    ROOT/fer2013.csv     header "emotion,pixels,Usage"; pixels = 2304 space-separated 0..255 values

``Usage`` gives the split: Training -> train, PublicTest -> val, PrivateTest -> test.
FER2013 codes 0 Angry, 1 Disgust, 2 Fear, 3 Happy, 4 Sad, 5 Surprise, 6 Neutral are mapped to the
canonical order by :data:`LABEL_MAP`. Images are returned as ``(48, 48, 3) uint8`` RGB (the gray
value repeated). Sample ids are ``fer0000000`` .. (the 0-based data row), the same names FER+
uses, so the two readers line up.
"""
from __future__ import annotations

import csv
from functools import partial
from pathlib import Path
from typing import Iterable, Iterator, Optional, Union

import numpy as np

from ..errors import DatasetFormatError
from ..types import Sample, Skipped
from ._common import CSV_ERROR, PathLike, iter_csv_rows, require_dir, require_file

# FER2013 code -> canonical label
LABEL_MAP: dict[int, int] = {
    0: 6,  # Angry -> anger
    1: 5,  # Disgust
    2: 4,  # Fear
    3: 1,  # Happy -> happiness
    4: 2,  # Sad -> sadness
    5: 3,  # Surprise
    6: 0,  # Neutral
}
USAGE_SPLITS = {"Training": "train", "PublicTest": "val", "PrivateTest": "test"}
SIDE = 48
CSV_NAME = "fer2013.csv"


def row_id(index: int) -> str:
    """Sample id of 0-based data row ``index`` (FER+'s image name without ``.png``)."""
    return f"fer{index:07d}"


def parse_splits(splits: Optional[Union[Iterable[str], str]]) -> Optional[frozenset]:
    """Validate a ``splits`` option against train/val/test; None keeps all."""
    if splits is None:
        return None
    if isinstance(splits, str):
        splits = splits.split(",")
    wanted = frozenset(s.strip() for s in splits if s.strip())
    if not wanted or not wanted <= set(USAGE_SPLITS.values()):
        raise DatasetFormatError(f"splits: FER2013 has the splits train, val, test; got {sorted(wanted)}")
    return wanted


def parse_pixels(text: str) -> np.ndarray:
    """Parse a FER2013 pixel string into ``(48, 48) uint8``.

    Raises:
        ValueError: not exactly 2304 integers in 0..255 (the message says which).
    """
    try:
        values = np.array(text.split(), dtype=np.int64)
    except ValueError:
        raise ValueError("pixel string holds a non-integer value") from None
    if values.size != SIDE * SIDE:
        raise ValueError(f"pixel string holds {values.size} values, expected {SIDE * SIDE}")
    if values.size and (values.min() < 0 or values.max() > 255):
        raise ValueError("pixel value outside 0..255")
    return values.astype(np.uint8).reshape(SIDE, SIDE)


def gray_to_rgb(gray: np.ndarray) -> np.ndarray:
    """``(H, W) uint8`` -> ``(H, W, 3) uint8`` RGB (a picklable ``Sample.load`` target)."""
    return np.repeat(gray[..., None], 3, axis=2)


def open_csv(root: PathLike, name: str = CSV_NAME) -> Path:
    """Check the layout and header of ``ROOT/fer2013.csv``; return its path."""
    root = require_dir(Path(root), "FER2013 root")
    path = require_file(root / name, "FER2013 pixel file")
    try:
        with open(path, newline="", encoding="utf-8-sig", errors="replace") as fh:
            header = [h.strip() for h in next(csv.reader(fh), [])]
    except (csv.Error, OSError) as exc:
        raise DatasetFormatError(f"{path}: cannot read the CSV header ({exc})") from None
    if not {"emotion", "pixels"} <= set(header):
        raise DatasetFormatError(f"{path}: expected the header emotion,pixels,Usage; got {header[:5]}")
    return path


def iter_rows(path: Path) -> Iterator[tuple[int, int, dict]]:
    """Yield ``(data row index, line number, row dict)`` of a CSV, streaming.

    A row the csv module cannot parse comes back as ``{CSV_ERROR: message}`` (see
    :func:`occlusion_synth.sources._common.iter_csv_rows`), keeping row indices aligned.
    """
    with open(path, newline="", encoding="utf-8-sig", errors="replace") as fh:
        for index, (line, row) in enumerate(iter_csv_rows(fh)):
            yield index, line, row


def iter_samples(root: PathLike, splits: Optional[Union[Iterable[str], str]] = None,
                 ) -> Iterator[Union[Sample, Skipped]]:
    """Stream FER2013 as :class:`Sample` / :class:`Skipped` records.

    Pixel strings are parsed while streaming (one row at a time, so bad rows become
    ``Skipped`` here); the ``Sample`` carries the 48x48 array and ``load()`` returns it as RGB.

    Args:
        root: the folder holding ``fer2013.csv``.
        splits: keep only these of train/val/test (list or comma-separated); None keeps all.

    Raises:
        DatasetFormatError: missing root/CSV or a wrong header (at call time).
    """
    wanted = parse_splits(splits)
    return _iter(open_csv(root), wanted)


def usage_split(row: dict, sid: str, where: str) -> Union[str, Skipped]:
    """The split of a FER2013 / FER+ row from its ``Usage`` column, or a Skipped naming the bad value."""
    split = USAGE_SPLITS.get((row.get("Usage") or "").strip())
    if split is None:
        return Skipped(sid, where, f"unknown Usage {row.get('Usage')!r} "
                                   "(expected Training, PublicTest or PrivateTest)")
    return split


def _iter(path: Path, wanted: Optional[frozenset]) -> Iterator[Union[Sample, Skipped]]:
    for index, line, row in iter_rows(path):
        sid, where = row_id(index), f"{path}:{line}"
        if CSV_ERROR in row:
            yield Skipped(sid, where, row[CSV_ERROR])
            continue
        split = usage_split(row, sid, where)
        if isinstance(split, Skipped):
            yield split
            continue
        if wanted is not None and split not in wanted:
            continue
        try:
            code = int((row.get("emotion") or "").strip())
        except ValueError:
            code = None
        if code not in LABEL_MAP:
            yield Skipped(sid, where, f"unknown FER2013 label {row.get('emotion')!r} (expected 0..6)")
            continue
        try:
            gray = parse_pixels(row.get("pixels") or "")
        except ValueError as exc:
            yield Skipped(sid, where, f"bad pixel string: {exc}")
            continue
        yield Sample(id=sid, split=split, label=LABEL_MAP[code], source=where,
                     load=partial(gray_to_rgb, gray), meta={"source_label": code})
