"""Streaming training from WebDataset shards: rank x worker splitting, items equal to the folder
loader's, `fer-pi train --data SHARDS` end to end, and DDP (two CPU processes, gloo)."""
from __future__ import annotations

import csv
import os
import socket
from collections import Counter

import pytest
import torch
import torch.multiprocessing as mp
from click.testing import CliRunner

from fer_fixtures import make_tiny_manifest, one_thread  # noqa: F401
from fer_pi.data import PairedDataset, ShardStream, build_loader, set_loader_epoch, split_shards
from fer_pi.data.stream import is_shard_source, resolve_shards, worker_quotas
from fer_pi.errors import DataError
from occlusion_synth.shards import folder_to_shards

pytestmark = pytest.mark.usefixtures("one_thread")
TINY = ["--arch", "tiny", "--weights", "none", "--image-size", "32", "--batch-size", "4", "--quiet"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("stream")
    manifest = make_tiny_manifest(root / "pairs", n_per_class=2, size=32, splits=("train", "val", "test"))
    folder_to_shards(root / "pairs", root / "shards", 3)
    return manifest, root / "shards"


@pytest.mark.parametrize("n,world,workers", [(1, 1, 1), (7, 2, 1), (10, 3, 2), (5, 2, 4), (64, 4, 3)])
def test_split_shards_covers_every_shard_exactly_once(n, world, workers):
    items = list(range(n))
    got = Counter(x for r in range(world) for w in range(workers) for x in split_shards(items, r, world, w, workers))
    assert got == Counter(items)


@pytest.mark.parametrize("counts,world,workers,batch", [([3, 3, 3, 3, 2], 2, 1, 2), ([5, 1, 4, 4, 4, 2], 2, 2, 2),
                                                        ([10] * 7 + [3], 3, 2, 4)])
def test_worker_quotas_give_every_rank_the_same_whole_batches(counts, world, workers, batch):
    quotas = worker_quotas(counts, world, workers, batch)
    assert len({sum(q) for q in quotas}) == 1 and sum(quotas[0]) > 0
    for r in range(world):
        for w in range(workers):
            assert quotas[r][w] % batch == 0
            assert quotas[r][w] <= sum(split_shards(counts, r, world, w, workers))


def test_sources_and_splits(data):
    manifest, shards = data
    assert is_shard_source(shards) and is_shard_source(shards / "index.json")
    assert is_shard_source(str(shards / "train-*.tar")) and is_shard_source(str(shards / "train-{000000..000004}.tar"))
    assert not is_shard_source(manifest) and not is_shard_source(manifest.parent)
    by_index = resolve_shards(shards)
    by_pattern = resolve_shards(str(shards / "*.tar"))
    assert {s: [x.count for x in v] for s, v in by_index.items()} == {s: [x.count for x in v] for s, v in by_pattern.items()}
    assert [x.count for x in by_index["train"]] == [3, 3, 3, 3, 2]
    with pytest.raises(DataError, match="splits present: train, val, test"):
        ShardStream(shards, "extra", 32)
    with pytest.raises(DataError, match="no shard file matches"):
        resolve_shards(str(shards / "nothing-*.tar"))


def test_stream_items_equal_the_folder_loader_items(data):
    manifest, shards = data
    folder = PairedDataset(manifest, "val", 24)
    by_id = {folder.rows[i]["id"]: folder[i] for i in range(len(folder))}
    items = list(ShardStream(shards, "val", 24))
    assert sorted(it["id"] for it in items) == sorted(by_id)
    for it in items:
        ref = by_id[it["id"]]
        for key in ("clean", "occluded", "mask", "label"):
            assert torch.equal(it[key], ref[key]), (it["id"], key)
        assert it["category"] == ref["category"] and it["occluded_fraction"] == pytest.approx(ref["occluded_fraction"])


def test_workers_read_each_sample_once_and_augmentation_does_not_depend_on_them(data):
    _, shards = data
    runs = {}
    for workers in (0, 2):
        ds = ShardStream(shards, "train", 32, augment=True, seed=3)
        loader = build_loader(ds, 4, True, seed=3, num_workers=workers)
        set_loader_epoch(loader, 1)
        items = {i: c for b in loader for i, c in zip(b["id"], b["clean"])}
        runs[workers] = items
        assert len(items) == 14
    assert runs[0].keys() == runs[2].keys()
    for k in runs[0]:  # same (seed, epoch, key) -> same crop/flip/colour whatever the worker
        assert torch.equal(runs[0][k], runs[2][k]), k
    plain = {it["id"]: it["clean"] for it in ShardStream(shards, "train", 32)}
    assert sum(not torch.equal(plain[k], runs[0][k]) for k in plain) > 7  # augmentation is on


def test_fer_pi_train_streams_shards(data, tmp_path):
    from fer_pi.cli import cli

    _, shards = data
    for source in (str(shards), str(shards / "*.tar")):
        run = tmp_path / ("run_index" if source == str(shards) else "run_glob")
        res = CliRunner().invoke(cli, ["train", "--data", source, "--out", str(run), "--preset", "full",
                                       "--epochs", "1", "--pretrain-epochs", "1", "--num-workers", "2", *TINY],
                                 catch_exceptions=False)
        assert res.exit_code == 0, res.output
        rows = list(csv.DictReader(open(run / "summary.csv")))
        assert len(rows) == 1 and rows[0]["val_acc"] != ""  # the val split was streamed too
        assert (run / "best.pt").is_file() and (run / "pretrain" / "student.pt").is_file()
    res = CliRunner().invoke(cli, ["train", "--data", str(shards / "missing-*.tar"), "--out", str(tmp_path / "x"),
                                   *TINY])
    assert res.exit_code == 2 and "no shard file matches" in res.output and res.output.count("\n") == 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, shards: str, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    from fer_pi.config import TrainConfig
    from fer_pi.distributed import cleanup, init_distributed
    from fer_pi.engine import train

    init_distributed("cpu")
    ids = []
    for epoch in (0, 1):
        loader = build_loader(ShardStream(shards, "train", 32, augment=True), 2, True, seed=0, num_workers=2,
                              distributed=True, drop_last=True)
        set_loader_epoch(loader, epoch)
        ids.append([list(b["id"]) for b in loader])
    val = build_loader(ShardStream(shards, "val", 32), 2, False, seed=0, num_workers=2, distributed=True)
    val_ids = [list(b["id"]) for b in val]
    torch.save({"ids": ids, "val": val_ids}, os.path.join(out, f"ids{rank}.pt"))
    cfg = TrainConfig.from_preset("full", arch="tiny", weights="none", image_size=32, batch_size=2, epochs=1,
                                  pretrain_epochs=1, data=shards, device="cpu", num_workers=1)
    train(cfg, os.path.join(out, "run"), progress=False)
    cleanup()


@pytest.mark.slow
def test_ddp_streams_disjoint_shards_with_equal_steps(data, tmp_path):
    _, shards = data
    mp.spawn(_ddp_worker, args=(2, _free_port(), str(shards), str(tmp_path)), nprocs=2, join=True)
    got = [torch.load(tmp_path / f"ids{r}.pt") for r in (0, 1)]
    a, b = got[0]["ids"], got[1]["ids"]
    # evaluation: every rank reads the whole split, in the same number of batches (a DDP forward
    # syncs buffers, so unequal batch counts would hang NCCL)
    assert got[0]["val"] == got[1]["val"] and sorted(i for x in got[0]["val"] for i in x) == sorted(
        f"val_{c}_{k:03d}" for c in range(7) for k in range(2))
    for epoch in (0, 1):
        assert len(a[epoch]) == len(b[epoch]) > 0  # same number of steps on both ranks
        ids_a = [i for batch in a[epoch] for i in batch]
        ids_b = [i for batch in b[epoch] for i in batch]
        assert not set(ids_a) & set(ids_b) and len(set(ids_a)) == len(ids_a)
    assert a[0] != a[1]  # the shard order changes with the epoch
    assert (tmp_path / "run" / "last.pt").is_file() and (tmp_path / "run" / "pretrain" / "teacher.pt").is_file()
