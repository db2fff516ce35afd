"""DDP with two CPU processes (gloo): Algorithm-1 steps stay in sync and rank 0 alone writes the run."""
from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

from fer_fixtures import make_tiny_manifest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, manifest: str, out: str) -> None:
    """One fine-tune epoch with DDP-wrapped nets (each rank saves its own weights), then a whole
    `train` run (pretrain + finetune) that rank 0 alone writes to ``out/run``."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    from torch.nn.parallel import DistributedDataParallel as DDP

    from fer_pi.config import TrainConfig
    from fer_pi.data import PairedDataset, build_loader, set_loader_epoch
    from fer_pi.distributed import cleanup, init_distributed
    from fer_pi.engine import PrivilegedTask, finetune_epoch
    from fer_pi.models import Decoder, Discriminator, build_backbone

    dist = init_distributed("cpu")
    assert dist.world_size == 2 and dist.rank == rank
    torch.manual_seed(0)  # identical init; DDP would broadcast rank 0's anyway
    student, teacher = build_backbone("tiny", None), build_backbone("tiny", None)
    disc, dec = Discriminator(16), Decoder(16, 32)
    cfg = TrainConfig.from_preset("full", arch="tiny", weights="none", image_size=32)
    task = PrivilegedTask(DDP(student), teacher, DDP(disc), DDP(dec), cfg)
    opt_s = torch.optim.Adam(list(task.student.parameters()) + list(task.decoder.parameters()), lr=1e-2)
    opt_d = torch.optim.Adam(task.discriminator.parameters(), lr=1e-2)
    loader = build_loader(PairedDataset(manifest, "train", 32), 2, True, seed=0, distributed=True)
    torch.manual_seed(rank)
    set_loader_epoch(loader, 0)
    metrics = finetune_epoch(task, loader, opt_s, opt_d, torch.device("cpu"))
    torch.save({"student": student.state_dict(), "disc": disc.state_dict(), "n": len(loader),
                "metrics": metrics}, os.path.join(out, f"steps{rank}.pt"))

    from fer_pi.engine import train

    run_cfg = TrainConfig.from_preset("full", arch="tiny", weights="none", image_size=32, batch_size=2,
                                      epochs=1, pretrain_epochs=1, data=manifest, device="cpu")
    train(run_cfg, os.path.join(out, "run"), progress=False)
    cleanup()


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    return make_tiny_manifest(tmp_path_factory.mktemp("tinyddp"), n_per_class=1, size=32)


@pytest.mark.slow
def test_ddp_two_cpu_processes(manifest, tmp_path):
    mp.spawn(_worker, args=(2, _free_port(), str(manifest), str(tmp_path)), nprocs=2, join=True)
    a, b = (torch.load(tmp_path / f"steps{r}.pt", weights_only=True) for r in (0, 1))
    assert a["n"] == b["n"] == 2  # 7 train samples, 2 ranks, batch 2: each rank gets 4 -> 2 batches
    for key in ("student", "disc"):
        for name, value in a[key].items():
            if "running" in name or "num_batches" in name:
                continue  # BN statistics are per process (no SyncBN)
            assert torch.equal(value, b[key][name]), (key, name)
    assert a["metrics"]["loss_total"] == b["metrics"]["loss_total"]  # reduced over ranks
    out = tmp_path / "run"
    for name in ("config.json", "summary.csv", "curves.png", "last.pt", "best.pt",
                 "pretrain/teacher.pt", "pretrain/student.pt"):
        assert (out / name).is_file(), name
    assert len((out / "summary.csv").read_text().splitlines()) == 2
    assert not list(out.rglob("*.tmp"))
