"""FER+ reader: Microsoft's re-labelled FER2013 (``fer2013new.csv`` votes + ``fer2013.csv`` pixels).

Layout (both files in ROOT; FER+ ships only the labels, the pixels stay in Kaggle's file)::

    ROOT/fer2013.csv       emotion,pixels,Usage           (row i holds image i's pixels)
    ROOT/fer2013new.csv    Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,
                           fear,contempt,unknown,NF       (row i holds image i's 10 votes)

The files are row-aligned (checked: same number of rows). The label is the majority vote over the
ten columns. Skipped, with the reason: an empty ``Image name`` (FER+ dropped the image), no
votes, a tie for the maximum, a majority for ``unknown`` or ``NF`` (not a face), and contempt
unless ``include_contempt``. Ids are FER+'s image names without ``.png`` (``fer0000000``).
"""
from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Iterable, Iterator, Optional, Union

import numpy as np

from ..errors import DatasetFormatError
from ..types import Sample, Skipped
from ._common import CSV_ERROR, PathLike, finite_number, require_file
from .fer2013 import gray_to_rgb, iter_rows, open_csv, parse_pixels, parse_splits, row_id, usage_split

VOTE_COLUMNS = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear",
                "contempt", "unknown", "NF")
# FER+ vote column -> canonical label (unknown / NF are not labels)
LABEL_MAP: dict[str, int] = {
    "neutral": 0, "happiness": 1, "surprise": 3, "sadness": 2, "anger": 6, "disgust": 5,
    "fear": 4, "contempt": 7,
}
LABELS_CSV = "fer2013new.csv"


def _count_rows(path: Path) -> int:
    """Number of non-empty lines after the header (neither file quotes newlines)."""
    n = 0
    with open(path, "rb") as fh:
        for line in fh:
            if line.strip():
                n += 1
    return max(0, n - 1)


def majority_vote(votes: dict[str, float]) -> tuple[Optional[str], str]:
    """Return ``(winning column, "")`` or ``(None, reason)`` for FER+ votes ``{column: count}``."""
    counts = np.array([votes[c] for c in VOTE_COLUMNS], dtype=np.float64)
    top = counts.max()
    if top <= 0:
        return None, "no votes"
    winners = [c for c, v in zip(VOTE_COLUMNS, counts) if v == top]
    if len(winners) > 1:
        return None, f"tie between {', '.join(winners)} ({top:g} votes each)"
    if winners[0] == "unknown":
        return None, "majority vote 'unknown'"
    if winners[0] == "NF":
        return None, "not a face (majority vote NF)"
    return winners[0], ""


def iter_samples(root: PathLike, splits: Optional[Union[Iterable[str], str]] = None,
                 include_contempt: bool = False) -> Iterator[Union[Sample, Skipped]]:
    """Stream FER+ as :class:`Sample` / :class:`Skipped` records (majority-vote labels).

    Args:
        root: the folder holding ``fer2013.csv`` and ``fer2013new.csv``.
        splits: keep only these of train/val/test (list or comma-separated); None keeps all.
        include_contempt: keep the contempt majority (canonical 7); skipped otherwise.

    Raises:
        DatasetFormatError: a file is missing, a header is wrong, or the two files have a
            different number of rows (checked at call time).
    """
    wanted = parse_splits(splits)
    pixels = open_csv(root)
    labels = require_file(Path(root) / LABELS_CSV, "FER+ label file")
    with open(labels, encoding="utf-8-sig", errors="replace") as fh:
        header = [h.strip() for h in fh.readline().split(",")]
    missing = [c for c in ("Usage", "Image name") + VOTE_COLUMNS if c not in header]
    if missing:
        raise DatasetFormatError(f"{labels}: missing column(s) {', '.join(missing)}; expected "
                                 f"Usage,Image name,{','.join(VOTE_COLUMNS)}")
    n_pix, n_lab = _count_rows(pixels), _count_rows(labels)
    if n_pix != n_lab:
        raise DatasetFormatError(f"{labels} has {n_lab} rows but {pixels} has {n_pix}; FER+ labels "
                                 "must be row-aligned with the original fer2013.csv")
    return _iter(pixels, labels, wanted, include_contempt)


def _iter(pixels: Path, labels: Path, wanted: Optional[frozenset],
          include_contempt: bool) -> Iterator[Union[Sample, Skipped]]:
    for (index, _, prow), (_, line, lrow) in zip(iter_rows(pixels), iter_rows(labels)):
        where = f"{labels}:{line}"
        if CSV_ERROR in lrow or CSV_ERROR in prow:
            bad = lrow if CSV_ERROR in lrow else prow
            yield Skipped(row_id(index), where if bad is lrow else f"{pixels}:{index + 2}", bad[CSV_ERROR])
            continue
        name = (lrow.get("Image name") or "").strip()
        sid = Path(name).stem if name else row_id(index)
        split = usage_split(lrow, sid, where)
        if isinstance(split, Skipped):
            yield split
            continue
        if wanted is not None and split not in wanted:
            continue
        if not name:
            yield Skipped(sid, where, "not in FER+ (empty Image name: the image was dropped)")
            continue
        try:
            votes = {c: finite_number(lrow.get(c) or "") for c in VOTE_COLUMNS}
            if any(v < 0 or v > 1e6 for v in votes.values()):
                raise ValueError
        except ValueError:
            yield Skipped(sid, where, "malformed row: a vote count is not a finite number in 0..1e6")
            continue
        winner, reason = majority_vote(votes)
        if winner is None:
            yield Skipped(sid, where, reason)
            continue
        if winner == "contempt" and not include_contempt:
            yield Skipped(sid, where, "contempt excluded (pass include_contempt to keep it)")
            continue
        try:
            gray = parse_pixels(prow.get("pixels") or "")
        except ValueError as exc:
            yield Skipped(sid, f"{pixels}:{index + 2}", f"bad pixel string: {exc}")
            continue
        yield Sample(id=sid, split=split, label=LABEL_MAP[winner], source=where,
                     load=partial(gray_to_rgb, gray),
                     meta={"votes": {k: int(v) for k, v in votes.items()}, "source_label": winner})
