"""Peak memory of `occsynth export --to webdataset` and of the shard stream loader vs dataset size.

Builds folder outputs of 1x and 10x the demo set's pair count (560 / 5600 pairs, 100x100 faces of
the synthetic fixture pattern), exports each to shards (1000 per shard) and streams every train
sample once through :class:`fer_pi.data.ShardStream` (augmentation on, 64 px), each in a fresh
process; reports the peak resident set size (``ru_maxrss``) of each process.
Writes benchmarks/results/shard_memory.json.

Usage: ``PYTHONPATH=. .venv/bin/python benchmarks/shard_memory.py [--scales 1,10]``
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEMO_PAIRS = 560  # 7 classes x (60 train + 20 test)

CHILD = r"""
import json, resource, sys, time
sys.path.insert(0, sys.argv[1] + "/tests")
what, a, b = sys.argv[2], sys.argv[3], sys.argv[4]
t0 = time.perf_counter()
if what == "make":
    from fer_fixtures import make_tiny_manifest
    make_tiny_manifest(a, n_per_class=int(b), size=100, splits=("train", "test"))
elif what == "export":
    from occlusion_synth.shards import folder_to_shards
    folder_to_shards(a, b, 1000)
else:
    import torch
    torch.set_num_threads(1)
    from fer_pi.data import ShardStream
    n = sum(1 for _ in ShardStream(a, "train", 64, augment=True))
    assert n == int(b), n
print(json.dumps({"peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "seconds": time.perf_counter() - t0}))
"""


def _child(*args: str) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, str(REPO), *args], cwd=REPO, capture_output=True,
                         text=True, check=True, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scales", default="1,10", help="multiples of the demo set's 560 pairs")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks/results/shard_memory.json")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for scale in [int(s) for s in args.scales.split(",")]:
            pairs, shards = Path(tmp) / f"pairs{scale}", Path(tmp) / f"shards{scale}"
            n_per_class = DEMO_PAIRS * scale // 14  # 7 classes x 2 splits
            _child("make", str(pairs), str(n_per_class))
            export = _child("export", str(pairs), str(shards))
            stream = _child("stream", str(shards), str(7 * n_per_class))
            size_mib = sum(p.stat().st_size for p in shards.glob("*.tar")) / 2 ** 20
            rows.append({"scale": scale, "pairs": 14 * n_per_class, "shard_mib": round(size_mib, 1),
                         "export_peak_rss_mib": round(export["peak_rss_mib"], 1),
                         "export_s": round(export["seconds"], 1),
                         "stream_peak_rss_mib": round(stream["peak_rss_mib"], 1),
                         "stream_s": round(stream["seconds"], 1)})
            print(rows[-1], flush=True)
    doc = {"benchmark": "shard_memory", "date": time.strftime("%Y-%m-%d"), "shard_size": 1000, "results": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
