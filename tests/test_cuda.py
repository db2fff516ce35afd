"""CUDA paths (run by `make gpu-check`; skipped without a GPU): AMP bf16/fp16 training runs,
channels_last and CPU/GPU agreement, `compile=true`, shard streaming into pinned memory."""
from __future__ import annotations

import csv
import math

import pytest
import torch
from click.testing import CliRunner

from fer_fixtures import make_tiny_manifest

DEVICE = "cuda"
pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (make gpu-check)")]
TINY = ["--arch", "resnet18", "--weights", "none", "--image-size", "32", "--batch-size", "8", "--quiet",
        "--device", DEVICE]


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    return make_tiny_manifest(tmp_path_factory.mktemp("cuda"), n_per_class=4, size=32)


def _cli(args):
    from fer_pi.cli import cli

    res = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return res.output


def _losses(run) -> list[float]:
    rows = list(csv.DictReader(open(run / "summary.csv")))
    return [float(r["loss_cls"]) for r in rows]


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_pretrain_and_finetune_with_amp(manifest, tmp_path, amp):
    pre = tmp_path / "pre"
    _cli(["pretrain", "--data", manifest, "--out", pre, "--epochs", "2", "--amp", amp, *TINY])
    _cli(["train", "--data", manifest, "--out", tmp_path / "full", "--pretrained-run", pre, "--preset", "full",
          "--epochs", "1", "--amp", amp, *TINY])
    from fer_pi.checkpoint import load_checkpoint

    ckpt = load_checkpoint(tmp_path / "full" / "last.pt")
    assert all(torch.isfinite(v).all() for v in ckpt["student"].values() if v.is_floating_point())
    assert all(math.isfinite(x) for x in _losses(pre) + _losses(tmp_path / "full"))


def test_channels_last_and_cpu_agree_with_contiguous_cuda():
    from fer_pi.models import build_backbone

    torch.manual_seed(0)
    net = build_backbone("resnet18", None).eval()
    x = torch.randn(4, 3, 64, 64)
    with torch.no_grad():
        ref, h_ref = net(x)
        gpu = net.to(DEVICE)
        out, h = gpu(x.to(DEVICE))
        out_cl, h_cl = gpu.to(memory_format=torch.channels_last)(
            x.to(DEVICE).contiguous(memory_format=torch.channels_last))
    torch.backends.cudnn.allow_tf32 = False
    tol = 1e-2 * float(ref.abs().max())  # TF32 / algorithm differences, not bugs
    assert (out.cpu() - ref).abs().max() <= tol and (out_cl.cpu() - ref).abs().max() <= tol
    assert (h_cl.float().cpu() - h_ref).abs().max() <= 1e-2 * float(h_ref.abs().max())


def test_compile_option_keeps_checkpoint_keys(manifest, tmp_path):
    _cli(["pretrain", "--data", manifest, "--out", tmp_path / "eager", "--epochs", "1", *TINY])
    _cli(["pretrain", "--data", manifest, "--out", tmp_path / "comp", "--epochs", "1", "--set", "compile=true",
          *TINY])
    from fer_pi.checkpoint import load_checkpoint

    a, b = load_checkpoint(tmp_path / "eager" / "student.pt"), load_checkpoint(tmp_path / "comp" / "student.pt")
    assert set(a["student"]) == set(b["student"])  # no "_orig_mod." prefixes: loadable by eager code
    assert b["config"]["compile"] is True
    assert all(math.isfinite(x) for x in _losses(tmp_path / "comp"))


def test_shard_stream_into_pinned_cuda_batches(manifest, tmp_path):
    from fer_pi.data import ShardStream, build_loader, set_loader_epoch
    from occlusion_synth.shards import folder_to_shards

    folder_to_shards(manifest.parent, tmp_path / "sh", 5)
    loader = build_loader(ShardStream(tmp_path / "sh", "train", 32, augment=True), 8, True, num_workers=2,
                          pin_memory=True)
    set_loader_epoch(loader, 0)
    n = 0
    for batch in loader:
        assert batch["clean"].is_pinned()
        x = batch["clean"].to(DEVICE, non_blocking=True)
        n += x.shape[0]
    assert n == 28
