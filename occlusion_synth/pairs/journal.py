"""The run journal and the index files built from it: manifest.csv, skipped.csv, landmarks.jsonl, dataset.json.

Imports :mod:`.config` and :mod:`.layout` only. Interface for other storage engines: a
:class:`Journal` receives one record per finished sample (``SampleResult.record()``) from the
main process, in any order; :func:`finalize` rebuilds the index files from the records, sorted,
so they never depend on the order samples finished or on how many processes (or machines,
followed by a merge) made them. A WebDataset writer keeps this journal and adds its shards.

Why a journal: workers finish samples in any order and a run may be killed at any moment. The
main process appends one JSON line per finished source sample to ``OUT/.occsynth/journal.jsonl``
*after* all of that sample's files are in place (atomic renames), so a journal line always
describes complete files. A kill can only cut the last line short; :class:`Journal` drops such a
fragment before appending again. Two lines with the same key (a sample redone after its files
went missing) resolve to the last one. A source record whose id was already used gets its own
key (``id#dup:...``), so it is listed in skipped.csv as a ``duplicate id`` and never replaces the
first record: a fresh run and a resumed run give the same index files.

Journal line: ``{"id": key, "pairs": [manifest row, ...], "skipped": [skip row, ...],
"faces": [[x0, y0, ...], ...], "landmark_source": str, "source": str,
"frame_landmarks": [[x, y], ...]}`` (last four optional; ``frame_landmarks``: the first face in
the framed image's pixels, kept by WebDataset outputs).

A WebDataset output (:mod:`.shard_output`) journals the same records; its workers write the files
into a staging folder, and :func:`finalize` with ``shards`` feeds them to the shard writer in
manifest order instead of writing manifest.csv.
"""
from __future__ import annotations

import csv
import io
import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional

from ..io import atomic_write_bytes, atomic_write_lines
from .layout import JOURNAL_NAME, KINDS, STATE_DIR
from .store import BlobStore, IdState, RowStore

MANIFEST_COLUMNS = ("id", "split", "label", "label_name", "clean", "occluded", "mask", "category",
                    "template", "occluded_fraction", "landmark_source", "seed", "faces_occluded")
SKIPPED_COLUMNS = ("id", "source", "reason")
LANDMARKS_NAME = "landmarks.jsonl"
SPLIT_ORDER = {"train": 0, "val": 1, "test": 2}


@dataclass
class Summary:
    """What one ``generate_pairs`` / ``merge_pairs`` call did (printed by the CLI, used by benchmarks)."""

    out: str
    new_pairs: int = 0
    new_samples: int = 0
    resumed_samples: int = 0
    new_skipped: int = 0
    skipped_by_reason: dict = field(default_factory=dict)
    seconds: float = 0.0
    stage_seconds: dict = field(default_factory=dict)
    counts: dict = field(default_factory=dict)
    internal_errors: int = 0
    first_result_seconds: float = 0.0  # start-up: library, models, worker processes

    @property
    def pairs_per_second(self) -> float:
        return self.new_pairs / self.seconds if self.seconds > 0 else 0.0


def reason_kind(reason: str) -> str:
    """Short class of a skip reason for the summary: the text before the first ``:``/``(``/quote."""
    cut = len(reason)
    for ch in (":", "(", "'", '"'):
        i = reason.find(ch)
        if i > 0:
            cut = min(cut, i)
    return reason[:cut].strip()[:60] or "unknown"


class Journal:
    """Append-only record of finished samples (see the module docstring)."""

    def __init__(self, out: os.PathLike | str):
        self.out = Path(out)
        self.path = self.out / STATE_DIR / JOURNAL_NAME
        self._fh = None
        self._lock = threading.Lock()  # appends stay whole lines even if a caller uses threads

    def records(self) -> Iterator[dict]:
        """Every well-formed journal line, in file order (a cut-short last line is ignored)."""
        if not self.path.is_file():
            return
        with open(self.path, "rb") as fh:
            for raw in fh:
                if not raw.endswith(b"\n"):
                    break  # fragment of a line cut by a kill
                try:
                    rec = json.loads(raw)
                except ValueError:
                    continue
                if isinstance(rec, dict) and "id" in rec:
                    yield rec

    def completed(self, state: "IdState", check_files: bool = True, files_root: Optional[Path] = None,
                  stored: Optional[Callable[[dict], bool]] = None) -> None:
        """Fill ``state`` with each journal key's state from its last record: ``done`` (pairs
        with all their files on disk, or a skip decided while processing), ``reader`` (the
        reader skipped it: a later run still processes the id if the reader now yields it as a
        sample) or ``redo``. ``state`` is on disk, so memory does not grow with the journal.

        Args:
            state: filled in.
            check_files: a record whose files are missing is ``redo``.
            files_root: where the files are (default: the output folder).
            stored: a record it accepts counts as done without its files (already in a shard).
        """
        root = self.out if files_root is None else Path(files_root)
        for rec in self.records():
            if rec.get("reader"):
                state.set(rec["id"], "reader")
                continue
            ok = not rec.get("retry", False)
            if ok and check_files:
                ok = all((root / row[k]).is_file() for row in rec.get("pairs", ()) for k in KINDS) or (
                    stored is not None and stored(rec))
            state.set(rec["id"], "done" if ok else "redo")

    def open(self) -> "Journal":
        """Open for appending, first cutting a partial last line left by a killed run."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.is_file():
            with open(self.path, "rb+") as fh:
                data_end = fh.seek(0, os.SEEK_END)
                if data_end:
                    fh.seek(data_end - 1)
                    if fh.read(1) != b"\n":
                        keep, pos = 0, data_end
                        while pos > 0:  # search backwards in blocks (the journal can be large)
                            start = max(0, pos - 65536)
                            fh.seek(start)
                            cut = fh.read(pos - start).rfind(b"\n")
                            if cut >= 0:
                                keep = start + cut + 1
                                break
                            pos = start
                        fh.truncate(keep)
        self._fh = open(self.path, "ab")
        return self

    def append(self, record: dict) -> None:
        """Append one record and flush it to the OS (survives a kill of this process)."""
        line = json.dumps(record, sort_keys=True, ensure_ascii=False).encode("utf-8") + b"\n"
        with self._lock:
            self._fh.write(line)
            self._fh.flush()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def __enter__(self) -> "Journal":
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()


def _csv_line(values: Iterable) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(list(values))
    return buf.getvalue()


def _rows(rec: dict, shard_rows: bool = False) -> Iterator[tuple]:
    """A journal record's index rows for :class:`RowStore`: ``(kind, sort, line, a, b, c, d)``;
    with ``shard_rows`` also one ``shard`` row per pair (JSON: the row and the frame landmarks)."""
    for r in rec.get("pairs", ()):
        sort = f"{SPLIT_ORDER.get(r['split'], 9)}\x00{r['split']}\x00{r['id']}"
        line = _csv_line(r.get(c, 1 if c == "faces_occluded" else "") for c in MANIFEST_COLUMNS)
        yield "pair", sort, line, r["split"], r["label_name"], r["category"], r["clean"]
        if shard_rows:
            row = {c: r.get(c, 1 if c == "faces_occluded" else "") for c in MANIFEST_COLUMNS}
            item = json.dumps({"row": row, "landmarks": rec.get("frame_landmarks")}, sort_keys=True,
                              ensure_ascii=False)
            yield "shard", sort, item, "", "", "", ""
    for r in rec.get("skipped", ()):
        sort = f"{r['id']}\x00{r['source']}\x00{r['reason']}"
        yield "skip", sort, _csv_line(r[c] for c in SKIPPED_COLUMNS), reason_kind(r["reason"]), "", "", ""
    if rec.get("faces"):
        line = json.dumps({"id": rec["id"], "source": rec.get("source", ""),
                           "landmark_source": rec.get("landmark_source", ""), "faces": rec["faces"]},
                          sort_keys=True, ensure_ascii=False) + "\n"
        yield "faces", rec["id"], line, "", "", "", ""


def collect(records: Iterable[dict], store: RowStore, shard_rows: bool = False) -> RowStore:
    """Put journal records into ``store`` (last record per key wins); read back sorted from it."""
    for rec in records:
        store.put(rec["id"], _rows(rec, shard_rows))
    return store


def write_csv(path: Path, columns: tuple, rows: list[dict]) -> None:
    """Atomically write ``rows`` (dicts) as CSV with ``columns`` (UTF-8, ``\\n`` line ends)."""
    _write_lines(path, columns, [_csv_line(row[c] for c in columns) for row in rows])


def _write_lines(path: Path, columns: tuple, lines: Iterable[str]) -> None:
    atomic_write_bytes(path, (_csv_line(columns) + "".join(lines)).encode("utf-8"))


def read_csv(path: Path) -> list[dict]:
    """Read a manifest/skipped CSV back as a list of string dicts."""
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def count(store: RowStore) -> dict:
    """Counts for dataset.json: per split, class, split x class, category, skip reason."""
    return {
        "pairs": store.total("pair"),
        "clean_images": store.total("pair", distinct="d"),
        "skipped": store.total("skip"),
        "per_split": store.counts("pair", "a"),
        "per_class": store.counts("pair", "b"),
        "per_split_class": store.counts2("pair", "a", "b"),
        "per_category": store.counts("pair", "c"),
        "skipped_by_reason": store.counts("skip", "a"),
    }


def finalize(out: os.PathLike | str, info: dict, records: Optional[Iterable[dict]] = None,
             shards: Optional[Callable[[Callable[[], Iterator[dict]]], None]] = None) -> dict:
    """Rebuild manifest.csv, skipped.csv, landmarks.jsonl and dataset.json in ``out`` from its journal.

    Rows go through an on-disk :class:`RowStore` and are written streaming, sorted, so memory
    does not grow with the dataset.

    Args:
        out: the output folder.
        info: what dataset.json says besides the counts (version, command, options, seed,
            label map, template licences).
        records: journal records to use instead of reading ``out``'s journal.
        shards: a WebDataset output's shard writer, called instead of writing manifest.csv with
            a function that returns a fresh iterator over the pairs in manifest order
            (``{"row": manifest row dict, "landmarks": [[x, y], ...] or None}``).

    Returns:
        The counts dict written into dataset.json.
    """
    out = Path(out)
    with RowStore(out / STATE_DIR / "rows.sqlite") as store:
        collect(Journal(out).records() if records is None else records, store, shard_rows=shards is not None)
        if shards is None:
            atomic_write_lines(out / "manifest.csv", [_csv_line(MANIFEST_COLUMNS)], store.lines("pair"))
        else:
            shards(lambda: (json.loads(line) for line in store.lines("shard")))
        atomic_write_lines(out / "skipped.csv", [_csv_line(SKIPPED_COLUMNS)], store.lines("skip"))
        atomic_write_lines(out / LANDMARKS_NAME, [], store.lines("faces"))
        counts = count(store)
    doc = dict(info, counts=counts)
    atomic_write_bytes(out / "dataset.json",
                       (json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False, default=str) + "\n").encode("utf-8"))
    return counts


class LandmarkCache:
    """The landmarks saved by the earlier output ``out`` (its landmarks.jsonl), indexed in the
    scratch SQLite file ``scratch`` (deleted on :meth:`close`), so the main process's memory
    stays flat in the dataset size; ``get(id)`` gives a sample's faces ``((68, 2) float32 array,
    ...)`` or None (~15 us). Lines that do not parse, or hold non-finite points, are left out
    (those samples are detected again); a later line of an id replaces an earlier one."""

    BATCH = 2048

    def __init__(self, out: os.PathLike | str, scratch: os.PathLike | str):
        import numpy as np

        self._store = BlobStore(scratch)
        path = Path(out) / LANDMARKS_NAME
        batch: list[tuple[str, bytes]] = []
        try:
            with open(path, "rb") as fh:
                for raw in fh:
                    try:
                        rec = json.loads(raw)
                        faces = np.asarray(rec["faces"], np.float32).reshape(-1, 68, 2)
                        key = str(rec["id"])
                    except (ValueError, KeyError, TypeError):
                        continue  # a line that does not parse: that sample is detected again
                    if len(faces) and np.isfinite(faces).all():
                        batch.append((key, faces.tobytes()))
                    if len(batch) >= self.BATCH:
                        self._store.put_many(batch)
                        batch = []
            self._store.put_many(batch)
        except BaseException:
            self._store.close()
            raise

    def get(self, key: str) -> Optional[tuple]:
        import numpy as np

        data = self._store.get(key)
        if data is None:
            return None
        return tuple(np.frombuffer(data, np.float32).reshape(-1, 68, 2).copy())

    def __len__(self) -> int:
        return len(self._store)

    def close(self) -> None:
        self._store.close()

    def __enter__(self) -> "LandmarkCache":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def template_info(library, categories: Iterable[str]) -> list[dict]:
    """Name, category, licence and source of every template a run may draw (for dataset.json)."""
    if library is None:
        return []
    return [{"name": t.name, "category": t.category, "licence": getattr(t, "licence", ""),
             "source": getattr(t, "source", "")} for t in library if t.category in set(categories)]


def dataset_info(cfg, command: Optional[str], templates: list[dict], label_map: dict) -> dict:
    """dataset.json content besides the counts (``cfg``: the run's ``PairsConfig``)."""
    from .. import __version__
    from ..labels import CANONICAL

    return {
        "tool": "occlusion-synth", "version": __version__,
        "command": command or "occlusion_synth.generate_pairs()",
        "options": cfg.to_dict(), "seed": cfg.seed, "source": cfg.src,
        "label_map": {"canonical": dict(enumerate(CANONICAL)),
                      "source_to_canonical": {str(k): v for k, v in label_map.items()}},
        "templates": templates,
        "layout": {"clean": "clean/{split}/{class}/{sample_id}", "occluded": "occluded/{split}/{class}/{pair_id}",
                   "mask": "mask/{split}/{class}/{pair_id}.png (uint8 0/255)",
                   "pair_id": "sample_id, or sample_id_k{k} when per_image > 1 (clean shared)",
                   "landmarks": "landmarks.jsonl: one line per sample, 68 points per face in source pixels"},
    }
