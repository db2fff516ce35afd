"""WebDataset output of ``generate`` (``output="webdataset"``): staging, resume state, and the
journal -> :class:`~occlusion_synth.shards.ShardWriter` feed.

Imports :mod:`.executor` (the landmark recorder), :mod:`.journal`, :mod:`.layout` and
:mod:`.sample`, plus :mod:`occlusion_synth.shards`.

How a run goes::

    workers       write each sample's files into OUT/.occsynth/staging/ (the folder layout)
    driver        journals each finished sample, as for a folder output
    finalize      reads the journal sorted (split, then id: the manifest order) and feeds the
                  pairs to a ShardWriter writing OUT/{split}-{n:06d}.tar + OUT/index.json
    end           the staging folder is deleted

Shard contents depend only on the set of finished samples and their order in the manifest,
never on which worker, executor or run made them, so ``workers`` 1 or 2, local or Ray, and an
interrupted run give byte-identical shards. Resume: a sample is done when its files are in
staging or its pairs are inside finished shards (``.shards.jsonl``); a run killed while writing
shards keeps the finished ones (a prefix per split) and writes only the rest.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Callable, Iterator

from ..shards import FORMAT, INDEX, STATE, ShardWriter, iter_shard, keys_digest, member, sample_key, sample_meta
from .journal import MANIFEST_COLUMNS
from .layout import KINDS, STATE_DIR
from .sample import WorkerSpec

STAGING = "staging"


def staging_dir(out: Path) -> Path:
    """Where the workers of a WebDataset output write the sample files."""
    return Path(out) / STATE_DIR / STAGING


def worker_spec(cfg, occluder_factory, library) -> WorkerSpec:
    """The workers' spec: files go to staging (results carry the framed landmarks)."""
    staged = cfg.replace(out=str(staging_dir(Path(cfg.out))))
    return WorkerSpec(staged, occluder_factory, library)


def remove_shards(out: Path) -> None:
    """Delete the shards, resume state and index a previous WebDataset run wrote in ``out``
    (only files listed in its ``.shards.jsonl``, and an occsynth ``index.json``)."""
    out = Path(out)
    state = out / STATE
    if state.is_file():
        for raw in state.read_bytes().splitlines():
            try:
                name = json.loads(raw)["name"]
            except (ValueError, KeyError, TypeError):
                continue
            if isinstance(name, str) and "/" not in name and name.endswith(".tar"):
                (out / name).unlink(missing_ok=True)
        state.unlink()
    index = out / INDEX
    if index.is_file():
        try:
            ours = json.loads(index.read_text(encoding="utf-8")).get("format") == FORMAT
        except (OSError, ValueError, AttributeError):
            ours = False
        if ours:
            index.unlink()


class ShardOutput:
    """The shard side of one WebDataset run (see the module docstring)."""

    def __init__(self, out: Path, shard_size: int, progress: bool = False):
        self.out = Path(out)
        self.progress = progress
        self.staging = staging_dir(self.out)
        self.writer = ShardWriter(self.out, shard_size, resume=True)
        self._done = self.writer.done_keys()

    def stored(self, record: dict) -> bool:
        """Whether every pair of a journal record is inside a finished shard."""
        pairs = record.get("pairs", ())
        return bool(pairs) and all(sample_key(r["id"]) in self._done for r in pairs)

    def _check_finished(self, items: Iterator[dict]) -> None:
        """Finished shards must hold exactly the first pairs of their split in manifest order; a
        run that added samples (a larger ``limit``, new source files) changes that order, so the
        finished shards from the first mismatch on are unpacked into staging and written again."""
        size = self.writer.shard_size
        chunk: dict[str, list] = {}
        n_chunk: dict[str, int] = {}
        bad: dict[str, int] = {}

        def check(split: str) -> None:
            keys, n = chunk.pop(split, []), n_chunk.get(split, 0)
            done = self.writer.finished(split)
            if split not in bad and keys and n < len(done) and done[n].keys_sha256 != keys_digest(sorted(keys)):
                bad[split] = n
            n_chunk[split] = n + 1

        for item in items:
            split = str(item["row"]["split"])
            chunk.setdefault(split, []).append(sample_key(str(item["row"]["id"])))
            if len(chunk[split]) == size:
                check(split)
        for split in list(chunk):
            check(split)
        for split in self.writer.splits():  # finished shards beyond the pairs there are now
            n = n_chunk.get(split, 0)
            if n < len(self.writer.finished(split)):
                bad[split] = min(bad.get(split, n), n)
        for split, n in sorted(bad.items()):
            for path in self.writer.drop(split, n):
                self._unpack(path)
                path.unlink()
        self._done = self.writer.done_keys()

    def _unpack(self, shard: Path) -> None:
        """Put a finished shard's files back into staging (to be written into the new shards)."""
        from ..io import atomic_write_bytes

        for _, files in iter_shard(shard):
            row = json.loads(files["json"])["manifest"]
            for kind in KINDS:
                target = self.staging / str(row[kind])
                if not target.is_file():
                    atomic_write_bytes(target, member(files, kind))

    def write(self, items: Callable[[], Iterator[dict]]) -> None:
        """Feed the pairs (``items()``: manifest order, from :func:`~.journal.finalize`) into the
        shards; write index.json."""
        from tqdm import tqdm

        self._check_finished(items())
        skip = self._done
        bar = tqdm(unit="pair", desc="shards", disable=not self.progress, dynamic_ncols=True)
        for position, item in enumerate(items()):
            bar.update(1)
            row = item["row"]
            key = sample_key(str(row["id"]))
            if key in skip:
                continue
            files = {}
            for kind in KINDS:
                rel = str(row[kind])
                files[f"{kind}.{rel.rsplit('.', 1)[-1].lower()}"] = (self.staging / rel).read_bytes()
            self.writer.add(key, files, dict(sample_meta(row, item.get("landmarks")), row=position))
        bar.close()
        self.writer.close({"columns": list(MANIFEST_COLUMNS), "source": "occsynth generate"})

    def clean_up(self) -> None:
        """Delete the staging folder (every pair is in a shard now)."""
        shutil.rmtree(self.staging, ignore_errors=True)


LAYOUT = {"shards": "{split}-{n:06d}.tar, shard_size pairs each (the last of a split fewer); index.json lists them",
          "members": "{key}.clean.png, {key}.occluded.png, {key}.mask.png (uint8 0/255), {key}.json",
          "key": "the pair id with characters other than A-Za-z0-9_- replaced by _",
          "json": "id, split, label, label_name, category, template, coverage, landmarks (68 x [x, y] in "
                  "the image's pixels), manifest (the manifest.csv row), row (its position)",
          "landmarks": "landmarks.jsonl: one line per sample, 68 points per face in source pixels"}

__all__ = ["LAYOUT", "ShardOutput", "remove_shards", "staging_dir", "worker_spec"]
