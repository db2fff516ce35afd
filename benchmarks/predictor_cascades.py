"""dlib's 68-point predictor cut to its first cascade levels, on both engines: landmark error and
time per call.

For each cascade depth (levels kept of the model's 15, :mod:`occlusion_synth.landmarks.dlib_model`),
with dlib's own predictor (``engine=dlib``; rows keyed by the depth) and, for ``--compact-depths``,
with the compact engine (the C extension ``_shape68``; rows ``compact <depth>``; distances "to
full" are always to dlib's own 15-level points):

* **demo faces**: the ``aligned`` backend (defaults otherwise) on aligned 100 px faces of a demo
  set (``occsynth demo-data``), whose true landmarks are known (``demo_landmarks.json``: the
  photo's landmarks carried through the warps that made each face). Mean point-to-point error
  over the 68 points / the true inter-ocular distance (eye centre to eye centre); also the mean
  distance to the full model's points, and the share of faces that took a second pass.
* **photos**: dlib's HOG detector on the test photos (``occlusion_synth.photos``) at 600, 300
  and 160 px (long side), each also mirrored; predictor on the detected boxes; mean distance to
  the full model's points / their inter-ocular distance.
* **time per call**: the predictor alone on a fixed box of 400 demo faces, the depths taking
  turns for 5 rounds in this one process (median and min of the rounds; CPU time).

Writes benchmarks/results/predictor_cascades.json.

    .venv/bin/python benchmarks/predictor_cascades.py [--data DIR] [--depths 15,12,11,10,8]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def load_demo(data: Path, n: int):
    from occlusion_synth.io import read_image

    truth = json.loads((data / "demo_landmarks.json").read_text())["landmarks"]
    files = [f for f in sorted((data / "Image" / "aligned").glob("*.jpg"))
             if f.name.rsplit("_aligned", 1)[0] in truth][:n]
    return ([read_image(f) for f in files],
            [np.asarray(truth[f.name.rsplit("_aligned", 1)[0]], np.float64) for f in files])


def load_photo_faces():
    import cv2
    import dlib

    from occlusion_synth.io import read_image
    from occlusion_synth.photos import fetch_photos

    detector = dlib.get_frontal_face_detector()
    faces = []
    for name, path in sorted(fetch_photos().items()):
        image = read_image(path)
        for side in (600, 300, 160):
            s = side / max(image.shape[:2])
            small = cv2.resize(image, (round(image.shape[1] * s), round(image.shape[0] * s)),
                               interpolation=cv2.INTER_AREA)
            for flip in (False, True):
                x = np.ascontiguousarray(small[:, ::-1] if flip else small)
                faces += [(x, r) for r in detector(x, 1)]
    return faces


def mean_error(points, refs) -> float:
    from occlusion_synth.landmarks.schemes import inter_ocular_distance

    return float(np.mean([np.linalg.norm(np.asarray(p, np.float64) - r, axis=1).mean() / inter_ocular_distance(r)
                          for p, r in zip(points, refs)]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "occsynth_bench_demo_2240",
                        help="demo set folder (built there with --per-class 300 if missing)")
    parser.add_argument("--faces", type=int, default=1500, help="demo faces used")
    parser.add_argument("--depths", default="15,12,11,10,9,8")
    parser.add_argument("--compact-depths", default="15,10", help="depths run on the compact engine too")
    parser.add_argument("--json", type=Path, default=REPO / "benchmarks" / "results" / "predictor_cascades.json")
    args = parser.parse_args()
    if not (args.data / "demo_landmarks.json").is_file():
        subprocess.run([sys.executable, "-m", "occlusion_synth.cli", "demo-data", str(args.data),
                        "--per-class", "300", "-q"], check=True)
    import cv2
    import dlib

    import occlusion_synth.landmarks.dlib_backend as db
    from occlusion_synth.landmarks.dlib_model import truncate

    cv2.setNumThreads(1)
    depths = [int(d) for d in args.depths.split(",")]
    images, truth = load_demo(args.data, args.faces)
    photos = load_photo_faces()
    source = Path(db.model_path(db.PREDICTOR_68)).read_bytes()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        predictors = {}
        for d in depths:
            path = Path(tmp) / f"depth{d}.dat"
            path.write_bytes(truncate(source, d))
            predictors[d] = dlib.shape_predictor(str(path))
        calls = {"n": 0}
        real_predict, real_predictor = db.predict_68, db._predictor

        def counted(*args):
            calls["n"] += 1
            return real_predict(*args)

        def run(depth: int):
            pred = predictors[depth]
            # the backend's own code, with this depth's predictor (built from a temp file here)
            db._predictor, db.predict_68 = (lambda _depth=None: pred), counted
            try:
                backend = db.AlignedBackend(engine="dlib")
                calls["n"] = 0
                demo = [backend.detect(im)[0].landmarks for im in images]
                second = calls["n"] / len(images) - 1
                ph = [db.predict_68(x, (r.left(), r.top(), r.right(), r.bottom())).astype(np.float64)
                      for x, r in photos]
            finally:
                db._predictor, db.predict_68 = real_predictor, real_predict
            return demo, ph, second

        full_demo, full_photos, _ = run(15) if 15 in predictors else (None, None, None)
        for d in depths:
            demo, ph, second = run(d)
            results[d] = {"demo_error_vs_truth": round(mean_error(demo, truth), 4),
                          "demo_second_pass_share": round(second, 3)}
            if full_demo is not None:
                results[d]["demo_distance_to_full"] = round(mean_error(demo, full_demo), 4)
                results[d]["photos_distance_to_full"] = round(mean_error(ph, full_photos), 4)
            print(d, results[d], flush=True)
        compact = [int(d) for d in args.compact_depths.split(",") if d] if db._shape68() is not None else []
        for d in compact:
            backend = db.AlignedBackend(cascade_depth=d, engine="compact")
            calls["n"] = 0
            db.predict_68 = counted
            try:
                demo = [backend.detect(im)[0].landmarks for im in images]
            finally:
                db.predict_68 = real_predict
            ph = [db.predict_68(x, (r.left(), r.top(), r.right(), r.bottom()), d, "compact").astype(np.float64)
                  for x, r in photos]
            key = f"compact {d}"
            results[key] = {"demo_error_vs_truth": round(mean_error(demo, truth), 4),
                            "demo_second_pass_share": round(calls["n"] / len(images) - 1, 3)}
            if full_demo is not None:
                results[key]["demo_distance_to_full"] = round(mean_error(demo, full_demo), 4)
                results[key]["photos_distance_to_full"] = round(mean_error(ph, full_photos), 4)
            print(key, results[key], flush=True)
        box = dlib.rectangle(8, 8, 91, 91)
        callers = {d: (lambda im, p=predictors[d]: p(im, box)) for d in depths}
        callers.update({f"compact {d}": (lambda im, d=d: db.predict_68(im, (8, 8, 91, 91), d, "compact"))
                        for d in compact})
        times = {k: [] for k in callers}
        for _ in range(5):
            for k, call in callers.items():
                t = time.process_time()
                for im in images[:400]:
                    call(im)
                times[k].append(1000 * (time.process_time() - t) / 400)
        for k in callers:
            results[k]["ms_per_call_median"] = round(float(np.median(times[k])), 3)
            results[k]["ms_per_call_min"] = round(min(times[k]), 3)
            if k in predictors:
                results[k]["model_mb"] = round((Path(tmp) / f"depth{k}.dat").stat().st_size / 1e6, 1)
            else:
                m = db._compact(int(k.split()[1]))
                results[k]["model_mb"] = round(sum(v.nbytes for v in m.values()) / 1e6, 1)
            print(k, "ms/call", results[k]["ms_per_call_median"], results[k]["ms_per_call_min"], flush=True)
    doc = {"benchmark": "predictor_cascades", "date": time.strftime("%Y-%m-%d %H:%M:%S"),
           "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "loadavg": os.getloadavg()},
           "demo_faces": len(images), "photo_faces": len(photos), "data": str(args.data),
           "error_unit": "mean point distance / inter-ocular distance of the reference",
           "results": {str(d): r for d, r in results.items()}}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
