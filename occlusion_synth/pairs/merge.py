"""``merge_pairs``: shard outputs (``generate_pairs`` with ``shard=(i, n)``) -> one output.

Top of :mod:`occlusion_synth.pairs` with :mod:`.run` (imports :mod:`.journal`, :mod:`.layout`).

Safety: the user's data is never touched. ``out`` must be missing, empty, or an earlier output
of this tool (only the names it writes, :data:`.layout.OUTPUT_NAMES`); anything else is refused.
The same shard (same folder, or the same ``i/n``) given twice is refused. Files are hard-linked
(or copied) atomically and the journals joined, so the result equals one unsharded run.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Iterable, Optional

from ..errors import OcclusionSynthError
from ..io import atomic_write_bytes
from .journal import Journal, Summary, finalize
from .layout import KINDS, OPTIONS_NAME, STATE_DIR, OutputLock, copy_file, is_own_output, os_error_message, \
    prepare_out, remove_outputs

MERGE_IGNORES = ("root", "templates")  # option keys shards may differ in (mount points)


def _read_json(path: Path, what: str) -> dict:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise OcclusionSynthError(f"shards: {what} {path} is unreadable ({exc})") from None
    if not isinstance(doc, dict):
        raise OcclusionSynthError(f"shards: {what} {path} is not a JSON object")
    return doc


def merge_pairs(shards: Iterable[os.PathLike | str], out: os.PathLike | str,
                command: Optional[str] = None):
    """Merge ``generate_pairs(..., shard=(i, n))`` outputs into ``out``.

    The result has the same files, manifest.csv, skipped.csv and landmarks.jsonl as one unsharded
    run (dataset.json differs only in ``command``/``options.shard``/``merged_from``).

    Returns:
        A :class:`~occlusion_synth.pairs.journal.Summary` (``counts``, ``new_pairs``).

    Raises:
        OcclusionSynthError: a folder is not a generate output, the same shard is given twice,
            the shards were made with different output options, two shards disagree about a
            sample, or ``out`` holds files this tool did not write.
    """
    start = time.perf_counter()
    shards = [Path(s) for s in shards]
    out = Path(out)
    if not shards:
        raise OcclusionSynthError("shards: give at least one shard folder")
    if not is_own_output(out):
        raise OcclusionSynthError(f"out: {out} is not empty and is not an earlier occsynth output; "
                                  "merge writes only into a new or empty folder (or its own earlier output)")
    options, infos, seen_paths, seen_shards = None, [], {}, {}
    records: dict[str, tuple[Path, dict]] = {}
    for shard in shards:
        opts = shard / STATE_DIR / OPTIONS_NAME
        if not opts.is_file() or not (shard / "dataset.json").is_file():
            raise OcclusionSynthError(f"shards: {shard} is not a finished occsynth generate output "
                                      f"(no {STATE_DIR}/{OPTIONS_NAME} or dataset.json)")
        real = shard.resolve()
        if out.exists() and real == out.resolve():
            raise OcclusionSynthError(f"out: {out} is also one of the shards")
        if real in seen_paths:
            raise OcclusionSynthError(f"shards: {shard} is given twice")
        seen_paths[real] = shard
        current = _read_json(opts, "options file")
        info = _read_json(shard / "dataset.json", "dataset.json")
        which = tuple(info.get("options", {}).get("shard") or (0, 1))
        if which in seen_shards:
            raise OcclusionSynthError(f"shards: {shard} and {seen_shards[which]} are the same shard "
                                      f"{which[0]}/{which[1]}")
        seen_shards[which] = shard
        diff = [] if options is None else sorted(
            k for k in set(options) | set(current)
            if k not in MERGE_IGNORES and options.get(k) != current.get(k))
        if diff:
            raise OcclusionSynthError(f"shards: {shard} was generated with different {', '.join(diff)} "
                                      f"than {shards[0]}")
        options = current
        infos.append(info)
        for rec in Journal(shard).records():
            prev = records.get(rec["id"])
            if prev is not None and prev[0] != shard and prev[1] != rec:
                raise OcclusionSynthError(f"shards: sample {rec['id']} differs between {prev[0]} and {shard}")
            records[rec["id"]] = (shard, rec)
    if len({n for _, n in seen_shards}) > 1:
        raise OcclusionSynthError("shards: the shards come from different splits "
                                  f"({', '.join(f'{i}/{n}' for i, n in seen_shards)})")
    out = prepare_out(out)
    n_pairs = 0
    try:
        with OutputLock(out):
            remove_outputs(out)
            for shard, rec in records.values():
                for row in rec.get("pairs", ()):
                    for kind in KINDS:
                        copy_file(shard / row[kind], out / row[kind])
                n_pairs += len(rec.get("pairs", ()))
            with Journal(out) as journal:
                for _, rec in sorted(records.values(), key=lambda sr: sr[1]["id"]):
                    journal.append(rec)
            atomic_write_bytes(out / STATE_DIR / OPTIONS_NAME,
                               (json.dumps(options, indent=2, sort_keys=True) + "\n").encode())
            info = {k: v for k, v in infos[0].items() if k != "counts"}
            info["options"] = dict(info.get("options", {}), shard=[0, 1])
            info["command"] = command or "occlusion_synth.merge_pairs()"
            info["merged_from"] = [{"path": str(s), "command": i.get("command"),
                                    "shard": i.get("options", {}).get("shard")} for s, i in zip(shards, infos)]
            counts = finalize(out, info, [rec for _, rec in records.values()])
    except OSError as exc:
        raise OcclusionSynthError(os_error_message(exc.filename or out, exc)) from None
    return Summary(out=str(out), new_pairs=n_pairs, counts=counts,
                   skipped_by_reason=counts.get("skipped_by_reason", {}),
                   seconds=time.perf_counter() - start)
