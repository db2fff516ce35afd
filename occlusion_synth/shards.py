"""WebDataset tar shards of generated pairs: a deterministic shard writer, a reader, and the
conversions folder output <-> shards used by ``occsynth export``.

Layout of a shard folder::

    DEST/index.json                   shard list, counts per split, manifest columns
    DEST/{split}-{n:06d}.tar          samples of one split, ``shard_size`` per shard (last one fewer)
    DEST/.shards.jsonl                one line per finished shard (resume state)
    DEST/dataset.json, skipped.csv    copied from the folder output when converting one

A sample is four tar members sharing a key: ``{key}.clean.png``, ``{key}.occluded.png``
(``.jpg`` for a ``--format jpg`` output), ``{key}.mask.png`` (uint8 0/255) and ``{key}.json`` (``id``, ``split``, ``label``, ``label_name``,
``category``, ``template``, ``coverage`` = occluded fraction, ``landmarks`` = ``(68, 2)`` list of
the framed image's points or ``null`` when the source did not keep them, and ``manifest`` = the
sample's full ``manifest.csv`` row as strings and ``row`` = its position there, so that shards
convert back to the same folder).

Determinism: members are sorted (key, then extension) and carry fixed metadata (mtime 0,
uid/gid 0, mode 0644, no user names), so identical samples fed in the same order give
byte-identical shards on any machine.

Feeding interface (for a generation journal or any producer)::

    with ShardWriter(dest, shard_size=1000, resume=True) as writer:
        skip = writer.done_keys()             # keys already inside finished shards
        for key, files, meta in samples:      # the SAME deterministic order on every run
            if key not in skip:
                writer.add(key, files, meta)  # files: {"clean.png": bytes, ...}; meta["split"] set
    # close() writes the last partial shard of each split and index.json

Shards of a split are written in order (shard ``n`` is finished before ``n + 1`` starts), so the
finished shards of a killed run are always a prefix of the split; a resumed run that skips their
keys and feeds the rest in the same order rebuilds the remaining shards identically. Each shard
is written to a temporary file and renamed (``os.replace``), so a shard file is always complete.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

from .errors import OcclusionSynthError
from .io import atomic_write_bytes

INDEX = "index.json"
STATE = ".shards.jsonl"
KINDS = ("clean", "occluded", "mask")
EXTRAS = ("dataset.json", "skipped.csv")  # folder-output files carried along unchanged
FORMAT = "occsynth-webdataset"
_KEY_OK = re.compile(r"^[A-Za-z0-9_-]+$")
_SHARD_NAME = re.compile(r"^([A-Za-z0-9_-]+)-(\d{6})\.tar$")


def sample_key(sample_id: str) -> str:
    """The WebDataset key of a pair id: characters other than ``A-Za-z0-9_-`` become ``_``
    (WebDataset cuts a member name at its first dot, and ``/`` would make a folder)."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", sample_id) or "_"


def shard_name(split: str, n: int) -> str:
    """File name of shard ``n`` of ``split``: ``{split}-{n:06d}.tar``."""
    return f"{split}-{n:06d}.tar"


def tar_bytes(members: list[tuple[str, bytes]]) -> bytes:
    """A tar archive of ``(name, data)`` members with fixed metadata, in the order given."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@dataclass(frozen=True)
class ShardRecord:
    """One finished shard: file name, split, number of samples, sha256 of the keys and of the file."""

    name: str
    split: str
    count: int
    keys_sha256: str
    sha256: str
    labels: dict

    def to_dict(self) -> dict:
        return {"name": self.name, "split": self.split, "count": self.count,
                "keys_sha256": self.keys_sha256, "sha256": self.sha256, "labels": self.labels}


def keys_digest(keys: list[str]) -> str:
    """sha256 of a shard's keys in order (``ShardRecord.keys_sha256``)."""
    return hashlib.sha256("\n".join(keys).encode()).hexdigest()


class ShardWriter:
    """Writes samples into per-split tar shards of ``shard_size`` samples (see the module docstring).

    Args:
        dest: the shard folder (created).
        shard_size: samples per shard (the last shard of a split holds the rest).
        resume: keep the shards a killed run finished (listed in ``.shards.jsonl`` and present with
            the recorded sha256); otherwise ``dest`` must not hold shards already.

    Raises:
        OcclusionSynthError: bad shard size, shards already in ``dest`` without ``resume``.
    """

    def __init__(self, dest: os.PathLike | str, shard_size: int, resume: bool = False):
        if int(shard_size) < 1:
            raise OcclusionSynthError(f"--shard-size {shard_size}: must be >= 1")
        self.dest = Path(dest)
        self.shard_size = int(shard_size)
        self.dest.mkdir(parents=True, exist_ok=True)
        self._done: dict[str, list[ShardRecord]] = {}
        self._done_keys: set[str] = set()
        self._keys: dict[str, list[str]] = {}  # finished shard name -> its keys
        self._buffers: dict[str, list[tuple[str, dict[str, bytes], dict]]] = {}
        self._seen: set[str] = set()
        self._state_fh = None
        if resume:
            self._load_state()
        elif (self.dest / STATE).exists() or any(self.dest.glob("*.tar")):
            raise OcclusionSynthError(f"{self.dest}: already holds shards (use resume to continue them)")

    # ------------------------------------------------------------------ resume state
    def _load_state(self) -> None:
        path = self.dest / STATE
        if not path.is_file():
            return
        records: dict[str, list[ShardRecord]] = {}
        keys_of: dict[str, list[str]] = {}
        for raw in path.read_bytes().split(b"\n"):
            try:
                line = json.loads(raw)
                rec = ShardRecord(**{k: line[k] for k in ShardRecord.__dataclass_fields__})
            except (ValueError, KeyError, TypeError):
                continue  # a line cut short by a kill
            shard = self.dest / rec.name
            if not shard.is_file() or _file_sha256(shard) != rec.sha256:
                continue
            records.setdefault(rec.split, []).append(rec)
            keys_of[rec.name] = line.get("keys", [])
        for split, recs in records.items():
            by_name = {r.name: r for r in recs}
            prefix = []  # shards 0..k-1 all finished: later ones are rewritten
            while shard_name(split, len(prefix)) in by_name:
                prefix.append(by_name[shard_name(split, len(prefix))])
            self._done[split] = prefix
            for r in prefix:
                self._keys[r.name] = list(keys_of[r.name])
                self._done_keys.update(keys_of[r.name])

    def done_keys(self) -> set[str]:
        """Keys inside shards already finished (by this writer or a resumed earlier run)."""
        return set(self._done_keys)

    def splits(self) -> list[str]:
        """Splits with finished shards."""
        return sorted(s for s, recs in self._done.items() if recs)

    def finished(self, split: str) -> list[ShardRecord]:
        """The finished shards of ``split``, in order."""
        return list(self._done.get(split, []))

    def drop(self, split: str, n: int) -> list[Path]:
        """Forget finished shards ``n``, ``n + 1``, ... of ``split`` (their samples are fed again;
        a resumed producer whose sample set changed calls this). Returns their paths: the caller
        deletes them once it has what it needs from them."""
        recs = self._done.get(split, [])
        dropped, self._done[split] = recs[n:], recs[:n]
        for rec in dropped:
            self._done_keys.difference_update(self._keys.pop(rec.name, ()))
        return [self.dest / rec.name for rec in dropped]

    # ------------------------------------------------------------------ writing
    def add(self, key: str, files: dict[str, bytes], meta: dict) -> None:
        """Queue one sample; writes a shard whenever its split has ``shard_size`` queued samples.

        Args:
            key: WebDataset key (``A-Za-z0-9_-``; see :func:`sample_key`), unique in the folder.
            files: member extension -> bytes, e.g. ``{"clean.png": ..., "occluded.png": ...,
                "mask.png": ...}``; ``json`` is added from ``meta``.
            meta: JSON-serialisable sample metadata; ``meta["split"]`` picks the shard series.

        Raises:
            OcclusionSynthError: bad or duplicate key, missing split.
        """
        if not _KEY_OK.match(key):
            raise OcclusionSynthError(f"shard key {key!r}: only A-Z a-z 0-9 _ - are allowed")
        if key in self._seen or key in self._done_keys:
            raise OcclusionSynthError(f"shard key {key!r} given twice (two samples with one id?)")
        split = str(meta.get("split", ""))
        if not _KEY_OK.match(split):
            raise OcclusionSynthError(f"sample {key}: split {split!r} is not a plain name")
        self._seen.add(key)
        member_files = dict(files)
        member_files["json"] = (json.dumps(meta, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")
        buf = self._buffers.setdefault(split, [])
        buf.append((key, member_files, meta))
        if len(buf) >= self.shard_size:
            self._flush(split)

    def _flush(self, split: str) -> None:
        buf = sorted(self._buffers.pop(split, []), key=lambda s: s[0])
        if not buf:
            return
        n = len(self._done.get(split, []))
        members = [(f"{key}.{ext}", data) for key, files, _ in buf for ext, data in sorted(files.items())]
        data = tar_bytes(members)
        name = shard_name(split, n)
        atomic_write_bytes(self.dest / name, data)
        labels: dict[str, int] = {}
        for _, _, meta in buf:
            lab = str(meta.get("label", ""))
            labels[lab] = labels.get(lab, 0) + 1
        keys = [k for k, _, _ in buf]
        rec = ShardRecord(name, split, len(buf), keys_digest(keys), hashlib.sha256(data).hexdigest(),
                          dict(sorted(labels.items())))
        if self._state_fh is None:
            self._state_fh = open(self.dest / STATE, "ab")
        self._state_fh.write((json.dumps({**rec.to_dict(), "keys": keys}, sort_keys=True) + "\n").encode())
        self._state_fh.flush()
        self._done.setdefault(split, []).append(rec)
        self._keys[name] = keys
        self._done_keys.update(keys)
        self._seen.difference_update(keys)  # queued keys only: finished ones are in _done_keys

    def close(self, info: Optional[dict] = None) -> dict:
        """Write the last partial shard of every split and ``index.json``; returns the index.

        Args:
            info: extra content for the index (e.g. ``{"columns": [...]}``).
        """
        for split in sorted(self._buffers):
            self._flush(split)
        if self._state_fh is not None:
            self._state_fh.close()
            self._state_fh = None
        splits = {}
        for split in sorted(self._done):
            recs = self._done[split]
            splits[split] = {"count": sum(r.count for r in recs),
                             "shards": [{k: v for k, v in r.to_dict().items() if k != "split"} for r in recs]}
        index = {"format": FORMAT, "version": 1, "shard_size": self.shard_size,
                 "kinds": list(KINDS), **(info or {}), "splits": splits}
        atomic_write_bytes(self.dest / INDEX, (json.dumps(index, indent=2, sort_keys=True) + "\n").encode())
        return index

    def __enter__(self) -> "ShardWriter":
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is None:
            self.close()
        elif self._state_fh is not None:  # keep finished shards; no index for a failed run
            self._state_fh.close()
            self._state_fh = None


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# ---------------------------------------------------------------------- reading
def read_index(path: os.PathLike | str) -> dict:
    """The ``index.json`` of a shard folder (``path``: the folder or the file).

    Raises:
        OcclusionSynthError: missing or unreadable index.
    """
    p = Path(path)
    if p.is_dir():
        p = p / INDEX
    try:
        index = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise OcclusionSynthError(f"{p}: not found (expected the index.json of `occsynth export --to webdataset`)") from None
    except (OSError, ValueError) as exc:
        raise OcclusionSynthError(f"{p}: unreadable shard index ({exc})") from None
    if not isinstance(index, dict) or index.get("format") != FORMAT or not isinstance(index.get("splits"), dict):
        raise OcclusionSynthError(f"{p}: not an occsynth shard index (format {FORMAT!r})")
    return index


def iter_shard(path: os.PathLike | str) -> Iterator[tuple[str, dict[str, bytes]]]:
    """``(key, {extension: bytes})`` of each sample of one tar shard, in file order.

    Raises:
        OcclusionSynthError: unreadable tar, a member that is not a regular file or not ``key.ext``.
    """
    key, files = None, {}
    try:
        with tarfile.open(path, mode="r:") as tar:
            for member in tar:
                if not member.isfile():
                    raise OcclusionSynthError(f"{path}: member {member.name!r} is not a regular file")
                base, dot, ext = member.name.partition(".")
                if not dot or not _KEY_OK.match(base):
                    raise OcclusionSynthError(f"{path}: member {member.name!r} is not KEY.EXT")
                if base != key:
                    if key is not None:
                        yield key, files
                    key, files = base, {}
                files[ext] = tar.extractfile(member).read()
    except (tarfile.TarError, OSError) as exc:
        raise OcclusionSynthError(f"{path}: unreadable tar shard ({exc})") from None
    if key is not None:
        yield key, files


def member(files: dict[str, bytes], kind: str) -> Optional[bytes]:
    """The bytes of a sample's ``kind`` image (``clean``/``occluded``/``mask``), whatever its
    extension (``png``, ``jpg``); None when absent."""
    for ext, data in files.items():
        if ext.split(".", 1)[0] == kind:
            return data
    return None


# ---------------------------------------------------------------------- folder <-> shards
def _refuse_nonempty(dest: Path) -> None:
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise OcclusionSynthError(f"--dest {dest}: exists and is not empty (give a new folder)")


def _safe_rel(rel: str, where: str) -> str:
    p = Path(rel)
    if not rel or p.is_absolute() or ".." in p.parts:
        raise OcclusionSynthError(f"{where}: unsafe path {rel!r} (must be relative, without '..')")
    return rel


def folder_to_shards(src: os.PathLike | str, dest: os.PathLike | str, shard_size: int,
                     resume: bool = False) -> dict:
    """Convert an ``occsynth generate`` folder (``manifest.csv`` + files) to shards in ``dest``.

    Samples go in manifest order (split, then id). With ``resume`` a killed conversion continues,
    rewriting only the shards it had not finished; otherwise ``dest`` must be new or empty.

    Returns:
        The index written to ``dest/index.json``.

    Raises:
        OcclusionSynthError: no manifest, a missing file, non-empty ``dest``, bad shard size.
    """
    src, dest = Path(src), Path(dest)
    manifest = src / "manifest.csv"
    if not manifest.is_file():
        raise OcclusionSynthError(f"{src}: no manifest.csv (expected an `occsynth generate` output folder)")
    if not resume:
        _refuse_nonempty(dest)
    with open(manifest, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        columns = list(reader.fieldnames or [])
        rows = list(reader)
    missing = [c for c in ("id", "split", "label", *KINDS) if c not in columns]
    if missing:
        raise OcclusionSynthError(f"{manifest}: lacks column(s) {', '.join(missing)}")
    with ShardWriter(dest, shard_size, resume=resume) as writer:
        skip = writer.done_keys()
        for position, row in enumerate(rows):
            key = sample_key(row["id"])
            if key in skip:
                continue
            files = {}
            for kind in KINDS:
                path = src / _safe_rel(row[kind], str(manifest))
                ext = path.suffix.lstrip(".").lower() or "png"  # clean/occluded may be jpg (--format jpg)
                try:
                    files[f"{kind}.{ext}"] = path.read_bytes()
                except OSError as exc:
                    raise OcclusionSynthError(f"{path}: cannot read ({exc.strerror or exc})") from None
            writer.add(key, files, dict(sample_meta(row), row=position))
        for name in EXTRAS:
            if (src / name).is_file():
                atomic_write_bytes(dest / name, (src / name).read_bytes())
        index = writer.close({"columns": columns, "source": str(src)})
    return index


def sample_meta(row: dict, landmarks: Optional[list] = None) -> dict:
    """The ``{key}.json`` content of a manifest row (``landmarks``: ``(68, 2)`` list or None)."""
    try:
        coverage = float(row.get("occluded_fraction") or "nan")
    except ValueError:
        coverage = float("nan")
    try:
        label = None if row.get("label") == "" else int(row["label"])  # "": an unlabelled photo
    except (KeyError, TypeError, ValueError):
        raise OcclusionSynthError(f"sample {row.get('id')}: label {row.get('label')!r} is not an integer") from None
    return {"id": row["id"], "split": row["split"], "label": label,
            "label_name": row.get("label_name", ""), "category": row.get("category", ""),
            "template": row.get("template", ""), "coverage": coverage if coverage == coverage else None,
            "landmarks": landmarks, "manifest": {k: ("" if v is None else str(v)) for k, v in row.items()}}


def shards_to_folder(src: os.PathLike | str, dest: os.PathLike | str) -> int:
    """Convert a shard folder back to the folder layout (files + ``manifest.csv`` with the rows
    and columns the shards were made from). Returns the number of pairs written.

    Raises:
        OcclusionSynthError: no index, non-empty ``dest``, unsafe paths or broken shards.
    """
    src, dest = Path(src), Path(dest)
    index = read_index(src)
    _refuse_nonempty(dest)
    rows = []
    for split, entry in index["splits"].items():
        for shard in entry.get("shards", []):
            name = str(shard.get("name", ""))
            if not _SHARD_NAME.match(name):
                raise OcclusionSynthError(f"{src / INDEX}: bad shard name {name!r}")
            for key, files in iter_shard(src / name):
                try:
                    meta = json.loads(files["json"])
                    row = meta["manifest"]
                except (KeyError, ValueError) as exc:
                    raise OcclusionSynthError(f"{src / name}: sample {key} has no usable json ({exc})") from None
                for kind in KINDS:
                    data = member(files, kind)
                    if data is None:
                        raise OcclusionSynthError(f"{src / name}: sample {key} lacks {kind}.png/.jpg")
                    target = dest / _safe_rel(row[kind], f"{src / name}:{key}")
                    if target.exists():  # shared clean image of several pairs
                        if target.read_bytes() != data:
                            raise OcclusionSynthError(f"{target}: two samples hold different bytes for it")
                        continue
                    atomic_write_bytes(target, data)
                position = meta.get("row")
                rows.append((position if isinstance(position, int) else 1 << 62, row))
    columns = index.get("columns") or (list(rows[0][1]) if rows else [])
    order = {"train": 0, "val": 1, "test": 2}
    rows.sort(key=lambda r: (r[0], order.get(r[1]["split"], 9), r[1]["split"], r[1]["id"]))
    rows = [r[1] for r in rows]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_bytes(dest / "manifest.csv", buf.getvalue().encode("utf-8"))
    for name in EXTRAS:
        if (src / name).is_file():
            shutil.copyfile(src / name, dest / name)
    return len(rows)


__all__ = ["INDEX", "KINDS", "ShardRecord", "ShardWriter", "folder_to_shards", "iter_shard", "member", "read_index",
           "keys_digest", "sample_key", "sample_meta", "shard_name", "shards_to_folder", "tar_bytes"]
