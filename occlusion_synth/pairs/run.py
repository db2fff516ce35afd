"""``generate_pairs``: one run (or one shard) from a source reader into an output folder.

Top of :mod:`occlusion_synth.pairs` with :mod:`.merge`: it wires config -> plan -> executor ->
journal and holds no per-sample logic.
"""
from __future__ import annotations

import json
import time
from contextlib import ExitStack
from collections import Counter
from pathlib import Path
from typing import Callable, Optional

from ..errors import OcclusionSynthError
from ..io import atomic_write_bytes
from .config import PairsConfig
from .executor import Executor, build_executor
from .journal import Journal, LandmarkCache, Summary, dataset_info, finalize, reason_kind, template_info
from .layout import OPTIONS_NAME, STATE_DIR, OutputLock, os_error_message, prepare_out, remove_outputs, remove_stale_temp
from .plan import ReaderSkip, plan_tasks
from .shard_output import LAYOUT as SHARD_LAYOUT, ShardOutput, remove_shards, worker_spec
from .store import IdState
from ..templates.split import mark_sets
from .sample import Occluder, WorkerSpec


def reader_kwargs(reader, cfg: PairsConfig) -> dict:
    """The reader options to pass, checked against the reader's signature."""
    import inspect

    params = inspect.signature(reader.iter_samples).parameters
    accepted = [p for p in params if p != "root"]
    kwargs = {}
    for key, value in cfg.reader_options.items():
        if value is None:
            continue
        if key not in params:
            raise OcclusionSynthError(f"reader_options: {key!r} is not an option of source {cfg.src!r} "
                                      f"(its options: {', '.join(accepted) or 'none'})")
        kwargs[key] = value
    if cfg.splits is not None and "splits" in params:
        # val can come from train (val_fraction): the reader must still give train
        wanted = set(cfg.splits) | ({"train"} if "val" in cfg.splits and cfg.val_fraction > 0 else set())
        kwargs["splits"] = [s for s in ("train", "val", "test") if s in wanted]
    return kwargs


def _check_resume(out: Path, cfg: PairsConfig) -> None:
    opts_path = out / STATE_DIR / OPTIONS_NAME
    current = cfg.output_options()
    if opts_path.is_file():
        try:
            previous = json.loads(opts_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise OcclusionSynthError(f"out: {opts_path} is unreadable ({exc}); use overwrite or "
                                      "another output folder") from None
        diff = sorted(k for k in set(previous) | set(current) if previous.get(k) != current.get(k))
        if diff:
            raise OcclusionSynthError(
                f"out: {out} holds a run made with different {', '.join(diff)} "
                f"({', '.join(f'{k}={previous.get(k)!r}' for k in diff)}); overwrite it, "
                "or choose another output folder")
    else:
        atomic_write_bytes(opts_path, (json.dumps(current, indent=2, sort_keys=True) + "\n").encode())


def _load_library(cfg: PairsConfig):
    """The run's template library (None when only blocks are drawn); fails early on bad templates."""
    if all(c == "block" for c in cfg.categories):
        return None
    from PIL import Image

    from ..templates import load_templates

    try:
        return load_templates(cfg.templates)
    except Image.DecompressionBombError as exc:  # a hostile template PNG: a user error, not a crash
        raise OcclusionSynthError(f"templates: {cfg.templates or 'the shipped library'} holds an image too "
                                  f"large to decode ({exc})") from None


def _template_split(cfg: PairsConfig, library):
    """The seen/unseen template split of ``holdout_templates`` (None when off), recorded in dataset.json."""
    if not cfg.holdout_templates:
        return None
    from ..templates.split import split_library

    return split_library(library, cfg.holdout_templates, cfg.seed)


def generate_pairs(config: PairsConfig, *, command: Optional[str] = None,
                   occluder_factory: Optional[Callable[[PairsConfig], Occluder]] = None,
                   executor: Optional[Executor] = None) -> Summary:
    """Run (or resume) paired generation into ``config.out``.

    Args:
        config: the run's options.
        command: the command line, recorded in dataset.json.
        occluder_factory: builds the occluder from the config in each worker (a picklable
            module-level function when ``workers > 1``); the object needs
            ``get_params(image, landmarks, rng)`` and ``apply(image, params) -> (image, mask)``.
            Default: the real ``Occlude``.
        executor: where samples run; default: :func:`~occlusion_synth.pairs.executor.build_executor`
            (``config.executor``: local processes or Ray actors, ``config.workers`` of them).

    Returns:
        A :class:`Summary`; ``counts`` are the totals now in ``out`` (as in dataset.json).

    Raises:
        OcclusionSynthError: a bad option or path (names it), another run holds ``out``, ``out``
            holds a run made with different output options or is not writable, or no pair at all
            could be generated.
    """
    import multiprocessing

    if getattr(multiprocessing.current_process(), "_inheriting", False):
        # a spawned worker is re-running the caller's script while it starts up
        raise OcclusionSynthError(
            "generate_pairs was called while a worker process was starting: with workers > 1, put "
            "the code that calls it under `if __name__ == \"__main__\":` (worker processes are "
            "spawned, and spawning re-runs the calling script)")
    try:
        return _generate(config, command, occluder_factory, executor)
    except OSError as exc:  # full disk, read-only, permissions on the output
        raise OcclusionSynthError(os_error_message(exc.filename or config.out, exc)) from None


def _generate(cfg: PairsConfig, command, occluder_factory, executor) -> Summary:
    from tqdm import tqdm

    from ..sources import get_reader

    reader = get_reader(cfg.src)
    kwargs = reader_kwargs(reader, cfg)
    executor = executor or build_executor(cfg)
    out = prepare_out(cfg.out)
    start = time.perf_counter()
    summary = Summary(out=str(out))
    stats: dict = {}
    skips: Counter = Counter()
    with OutputLock(out), ExitStack() as stack:
        if cfg.overwrite:
            remove_outputs(out)
            remove_shards(out)
        try:
            stream = reader.iter_samples(cfg.root, **kwargs)  # layout errors surface here
        except (TypeError, ValueError) as exc:  # an option value the reader cannot use
            raise OcclusionSynthError(f"reader_options: invalid option for source {cfg.src!r} ({exc}); "
                                      f"options given: {kwargs or 'none'}") from None
        _check_resume(out, cfg)
        library = _load_library(cfg)
        templates = mark_sets(template_info(library, cfg.categories), _template_split(cfg, library))
        shards = ShardOutput(out, cfg.shard_size, cfg.progress) if cfg.output == "webdataset" else None
        files_root = out if shards is None else shards.staging
        remove_stale_temp(files_root)
        journal = Journal(out)
        # on disk: the main process never holds every finished id in memory
        state = stack.enter_context(IdState(out / STATE_DIR / "state.sqlite"))
        seen = stack.enter_context(IdState(out / STATE_DIR / "seen.sqlite"))
        cache = stack.enter_context(LandmarkCache(cfg.landmark_cache, out / STATE_DIR / "cache.sqlite")) \
            if cfg.landmarks == "cached" else None
        journal.completed(state, files_root=files_root, stored=None if shards is None else shards.stored)

        def is_done(key: str) -> bool:
            return state.has(key, "done")

        def is_reader_skipped(key: str) -> bool:
            return state.has(key, "reader")

        bar = tqdm(unit="pair", desc="generate", disable=not cfg.progress, dynamic_ncols=True,
                   total=None if cfg.limit is None else cfg.limit * cfg.per_image)
        spec = WorkerSpec(cfg, occluder_factory, library) if shards is None else \
            worker_spec(cfg, occluder_factory, library)
        with journal, bar:
            items = plan_tasks(stream, cfg, is_done, is_reader_skipped, seen.add_new,
                               None if cache is None else cache.get, stats)

            def tasks():
                for item in items:
                    if isinstance(item, ReaderSkip):
                        if not is_reader_skipped(item.journal_id):
                            journal.append({"id": item.journal_id, "pairs": [], "reader": True, "skipped": [
                                {"id": item.id, "source": item.source, "reason": item.reason}]})
                            state.set(item.journal_id, "reader")
                            skips[reason_kind(item.reason)] += 1
                        continue
                    yield item

            for res in executor.map(spec, tasks()):
                if not summary.first_result_seconds:
                    summary.first_result_seconds = time.perf_counter() - start
                for k, v in res.timing.items():
                    summary.stage_seconds[k] = summary.stage_seconds.get(k, 0.0) + v
                record = res.record()
                if shards is not None and res.frame_landmarks is not None:  # WebDataset samples store them
                    record["frame_landmarks"] = res.frame_landmarks
                journal.append(record)
                summary.new_pairs += len(res.pairs)
                summary.new_samples += bool(res.pairs)
                for row in res.skipped:
                    skips[reason_kind(row["reason"])] += 1
                    summary.internal_errors += row["reason"].startswith("internal error")
                bar.update(len(res.pairs))
                if res.skipped:
                    bar.set_postfix(skipped=sum(skips.values()), refresh=False)
        label_map = getattr(reader, "LABEL_MAP", {})
        info = dataset_info(cfg, command, templates, label_map)
        if shards is None:
            summary.counts = finalize(out, info)
        else:
            summary.counts = finalize(out, dict(info, layout=SHARD_LAYOUT), shards=shards.write)
            shards.clean_up()
    summary.resumed_samples = stats.get("resumed", 0)
    summary.new_skipped = sum(skips.values())
    summary.skipped_by_reason = dict(sorted(skips.items()))
    summary.seconds = time.perf_counter() - start
    if summary.counts.get("pairs", 0) == 0:
        reasons = ", ".join(f"{k}: {v}" for k, v in summary.counts.get("skipped_by_reason", {}).items())
        raise OcclusionSynthError(f"no pair could be generated from source {cfg.src!r} at {cfg.root} "
                                  f"({summary.counts.get('skipped', 0)} skipped"
                                  f"{'; ' + reasons if reasons else ''}); see {out / 'skipped.csv'}")
    return summary


__all__ = ["Summary", "generate_pairs", "reader_kwargs"]
