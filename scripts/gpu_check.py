#!/usr/bin/env python3
"""``make gpu-check``: the GPU paths end to end on one machine, in at most 8 minutes.

Steps (each a plain command a user can rerun by hand, each with its own time limit):

1. ``pytest -m cuda``: the CUDA-marked tests (AMP bf16/fp16, channels_last, compile, pinned loaders).
2. ``fer-pi bench``: ResNet-50, 224 px, bf16, batch 8 and 64 (training pairs/s, inference images/s).
3. The demo data (``occsynth demo-data`` + ``occsynth generate``, or ``--pairs`` to reuse pairs),
   then one ``fer-pi pretrain`` epoch and one ``fer-pi train --preset full`` epoch on CUDA with bf16.
4. ``torch.compile``: ResNet-50 compiled vs eager outputs (bf16) and one pretrain epoch with
   ``--set compile=true``.
5. With two or more GPUs: one DDP pretrain epoch over NCCL (``torchrun --nproc_per_node 2``).

Writes ``benchmarks/results/gpu.json`` (every step's command, status, seconds and figures).
Without a CUDA GPU it prints one line and exits 2; a failed step makes the exit status 1.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BUDGET_S = 8 * 60
BIN = Path(sys.executable).parent

COMPILE_SNIPPET = r"""
import json, sys, time, torch
from fer_pi.models import build_backbone
torch.manual_seed(0)
net = build_backbone("resnet50", None).cuda().eval().to(memory_format=torch.channels_last)
x = torch.randn(16, 3, 224, 224, device="cuda").contiguous(memory_format=torch.channels_last)
with torch.no_grad(), torch.autocast("cuda", torch.bfloat16):
    ref, _ = net(x)
    t0 = time.perf_counter(); net.compile(); out, _ = net(x); torch.cuda.synchronize()
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(10):
        out, _ = net(x)
    torch.cuda.synchronize(); per = (time.perf_counter() - t0) / 10
diff = (out.float() - ref.float()).abs().max().item()
scale = ref.float().abs().max().item()
print("RESULT " + json.dumps({"max_abs_diff": diff, "max_abs_logit": scale, "first_call_s": first, "s_per_batch16": per}))
sys.exit(0 if diff <= 0.05 * max(scale, 1.0) else 1)
"""


def _no_gpu_reason() -> str | None:
    try:
        import torch
    except ImportError as exc:
        return f"torch is not importable ({exc})"
    if not torch.cuda.is_available():
        build = torch.version.cuda or "none (CPU-only build)"
        return (f"no CUDA GPU visible to torch {torch.__version__} (CUDA build {build}); "
                "run `make gpu-check` on a machine with an NVIDIA GPU")
    return None


def _run(name: str, cmd: list[str], limit: float, results: list[dict], env: dict | None = None) -> dict:
    """Run one step with a time limit; record command, status, seconds and the output tail."""
    t0 = time.perf_counter()
    entry = {"step": name, "command": " ".join(cmd), "limit_s": round(limit)}
    print(f"== {name}: {entry['command']}", flush=True)
    if limit < 5:
        entry.update(status="skipped", reason="no time left in the 8-minute budget")
        results.append(entry)
        return entry
    try:
        proc = subprocess.run(cmd, cwd=REPO, env={**os.environ, **(env or {})}, capture_output=True, text=True,
                              timeout=limit)
        entry["status"] = "ok" if proc.returncode == 0 else f"failed (exit {proc.returncode})"
        output = proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as exc:
        entry["status"] = f"timeout after {limit:.0f} s"
        output = (exc.stdout or b"").decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
    entry["seconds"] = round(time.perf_counter() - t0, 1)
    entry["output_tail"] = output[-2000:]
    print(f"   {entry['status']} ({entry['seconds']} s)", flush=True)
    if entry["status"] != "ok":
        print(output[-2000:], file=sys.stderr)
    results.append(entry)
    return entry


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks/results/gpu.json", help="result JSON")
    ap.add_argument("--pairs", type=Path, default=None,
                    help="existing generated demo pairs (OUT of occsynth generate) instead of building them")
    args = ap.parse_args(argv)
    reason = _no_gpu_reason()
    if reason is not None:
        print(f"gpu-check: {reason}", file=sys.stderr)
        return 2
    import torch

    start = time.perf_counter()
    left = lambda: BUDGET_S - (time.perf_counter() - start)  # noqa: E731
    results: list[dict] = []
    work = Path(tempfile.mkdtemp(prefix="gpu_check_"))
    occsynth, ferpi = str(BIN / "occsynth"), str(BIN / "fer-pi")
    try:
        _run("cuda tests", [sys.executable, "-m", "pytest", "-q", "-m", "cuda", "tests"], min(90, left()), results)
        bench_json = work / "bench.json"
        b = _run("bench resnet50 224px bf16", [ferpi, "bench", "--arch", "resnet50", "--image-size", "224", "--amp",
                                               "bf16", "--batch-sizes", "8,64", "--device", "cuda", "--steps", "10",
                                               "--warmup", "3", "--out", str(bench_json)], min(120, left()), results)
        if b["status"] == "ok":
            b["figures"] = json.loads(bench_json.read_text())
        pairs = args.pairs
        if pairs is None:
            _run("demo data", [occsynth, "demo-data", str(work / "demo"), "--seed", "0"], min(120, left()), results)
            _run("generate demo pairs", [occsynth, "generate", "--src", "rafdb", "--root", str(work / "demo"),
                                         "--templates", "assets", "--out", str(work / "pairs"), "--landmarks",
                                         "aligned", "--seed", "0", "--workers", str(min(8, os.cpu_count() or 1))],
                 min(120, left()), results)
            pairs = work / "pairs"
        common = ["--data", str(pairs / "manifest.csv"), "--size", "demo", "--device", "cuda", "--amp", "bf16",
                  "--num-workers", "4", "--quiet", "--set", "threads=0"]
        _run("pretrain 1 epoch (cuda, bf16)", [ferpi, "pretrain", *common, "--epochs", "1", "--out",
                                               str(work / "pre")], min(90, left()), results)
        _run("fine-tune 1 epoch (full, cuda, bf16)", [ferpi, "train", *common, "--preset", "full", "--epochs", "1",
                                                      "--pretrained-run", str(work / "pre"), "--out",
                                                      str(work / "full")], min(90, left()), results)
        c = _run("torch.compile resnet50 vs eager", [sys.executable, "-c", COMPILE_SNIPPET], min(150, left()),
                 results)
        if c["status"] == "ok":
            c["figures"] = json.loads(next(line[7:] for line in c["output_tail"].splitlines()
                                           if line.startswith("RESULT ")))
        _run("pretrain 1 epoch with compile=true", [ferpi, "pretrain", *common, "--epochs", "1", "--set",
                                                    "compile=true", "--out", str(work / "pre_compiled")],
             min(120, left()), results)
        n_gpus = torch.cuda.device_count()
        if n_gpus >= 2:
            _run("DDP NCCL 2 GPUs pretrain 1 epoch", [str(BIN / "torchrun"), "--standalone", "--nproc_per_node", "2",
                                                      "-m", "fer_pi.cli", "pretrain", *common, "--epochs", "1",
                                                      "--out", str(work / "ddp")], min(120, left()), results)
        else:
            results.append({"step": "DDP NCCL", "status": "skipped", "reason": f"{n_gpus} GPU visible (needs 2)"})
    finally:
        shutil.rmtree(work, ignore_errors=True)
    failed = [r["step"] for r in results if r["status"] not in ("ok", "skipped")]
    report = {"device": torch.cuda.get_device_name(0), "gpus": torch.cuda.device_count(), "torch": torch.__version__,
              "cuda": torch.version.cuda, "total_s": round(time.perf_counter() - start, 1),
              "budget_s": BUDGET_S, "ok": not failed, "steps": results}
    from occlusion_synth.io import atomic_write_bytes

    atomic_write_bytes(args.out, (json.dumps(report, indent=2) + "\n").encode())
    print(f"gpu-check: {'all steps passed' if not failed else 'FAILED: ' + ', '.join(failed)} "
          f"in {report['total_s']} s -> {args.out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
