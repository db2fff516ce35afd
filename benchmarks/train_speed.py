"""Training and inference throughput of fer_pi (writes benchmarks/results/train_speed.json).

Times `fer-pi bench`'s measurement (:func:`fer_pi.evaluation.run_benchmark`): a full fine-tune
step of Algorithm 1 (frozen-teacher forward, student forward/backward, discriminator step,
decoder) in pairs/s, and student inference in images/s, for a few architecture / resolution /
batch-size settings. Not run by pytest.

    .venv/bin/python benchmarks/train_speed.py            # CPU-sized default settings
    .venv/bin/python benchmarks/train_speed.py --gpu      # the paper's settings on a GPU
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

# (arch, image size, batch sizes, timed steps)
CPU_SETTINGS = [
    ("resnet18", 64, [16], 5),     # the demo size preset
    ("resnet50", 88, [8], 5),      # paper-rafdb resolution
    ("resnet50", 224, [8], 3),     # paper-affectnet resolution (Table 4: batch 8)
]
GPU_SETTINGS = [
    ("resnet50", 88, [8, 64], 20),
    ("resnet50", 224, [8, 32, 64], 20),
]


def main(argv=None) -> int:
    from fer_pi.evaluation import run_benchmark

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gpu", action="store_true", help="use the GPU settings and --device cuda")
    ap.add_argument("--amp", default="off", choices=["off", "bf16", "fp16"], help="mixed precision")
    ap.add_argument("--threads", default="1,2", help="comma-separated torch CPU thread counts to compare (CPU only)")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "train_speed.json"),
                    help="JSON file to write")
    args = ap.parse_args(argv)
    settings = GPU_SETTINGS if args.gpu else CPU_SETTINGS
    device = "cuda" if args.gpu else "cpu"
    runs = []
    t0 = time.perf_counter()
    thread_counts = [0] if args.gpu else [int(t) for t in args.threads.split(",")]
    for arch, size, batch_sizes, steps in settings:
        for threads in thread_counts:
            rep = run_benchmark(arch=arch, image_size=size, batch_sizes=batch_sizes, steps=steps, warmup=2,
                                device=device, amp=args.amp, threads=threads)
            runs.append(rep)
            for row in rep["results"]:
                print(f"{arch:9s} {size:4d}px bs {row['batch_size']:3d}: train {row['train_pairs_per_s']:8.2f} "
                      f"pairs/s  infer {row['infer_images_per_s']:8.2f} images/s  ({rep['device_name']}, "
                      f"{rep['threads']} threads, load {rep['load_average'][0]:.1f})", flush=True)
    out = {"benchmark": "train_speed", "cpu_count": os.cpu_count(), "wall_s": time.perf_counter() - t0,
           "runs": runs}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
