"""Paired generation: a source dataset -> clean / occluded / mask files + manifest, one way.

Modules, lowest first (each imports only modules above it in this list)::

    config    PairsConfig: validated, frozen options                 (imports nothing of pairs)
    layout    output paths, lock, OUT checks and cleanup               (imports nothing of pairs)
    plan      Task stream: seeds, shards, val split, duplicates        (config)
    sample    SampleWorker: decode -> landmarks -> crop -> occlude -> encode -> files  (config, plan, layout)
    journal   journal.jsonl -> manifest.csv, skipped.csv, landmarks.jsonl, dataset.json  (layout)
    executor  Executor protocol + LocalExecutor (process pool)         (plan, sample)
    ray_executor  RayExecutor: the same workers on Ray actors (ray imported lazily)  (executor)
    shard_output  output="webdataset": staging folder -> journal -> shards.ShardWriter  (executor, journal)
    run       generate_pairs: wires plan -> executor -> journal        (all of the above)
    merge     merge_pairs: shard outputs -> one output                 (journal, layout)

Public: :class:`PairsConfig`, :func:`generate_pairs`, :func:`merge_pairs`, :class:`Summary`,
:class:`Task`, :class:`Executor`, :class:`LocalExecutor`, :class:`RayExecutor`, :class:`SampleWorker`,
:class:`WorkerSpec`, :func:`pair_seed`, :func:`shard_of`.
"""
from __future__ import annotations

from .config import CROP_MODES, FACE_MODES, FORMATS, LANDMARK_MODES, ConfigError, PairsConfig
from .executor import Executor, LocalExecutor
from .journal import MANIFEST_COLUMNS, SKIPPED_COLUMNS, Journal, Summary, read_csv
from .merge import merge_pairs
from .ray_executor import RayExecutor
from .plan import Task, face_seed, pair_seed, shard_of
from .run import generate_pairs
from .sample import STAGES, SampleResult, SampleWorker, WorkerSpec

__all__ = ["CROP_MODES", "FACE_MODES", "FORMATS", "LANDMARK_MODES", "MANIFEST_COLUMNS", "SKIPPED_COLUMNS",
           "STAGES", "ConfigError", "Executor", "Journal", "LocalExecutor", "PairsConfig", "RayExecutor", "SampleResult",
           "SampleWorker", "Summary", "Task", "WorkerSpec", "face_seed", "generate_pairs", "merge_pairs",
           "pair_seed", "read_csv", "shard_of"]
