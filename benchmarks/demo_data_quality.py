"""Quality of the embedded demo dataset: build time, face detectability, landmark accuracy, learnability.

Builds the default demo set (7 classes x (60 train + 20 test), 100 px, seed 0) and measures:

- build time (wall and process CPU seconds);
- the dlib path: share of crops where ``detect(crop, backend="dlib")`` finds a face with HOG
  upsample 0, 1 and 2, and the landmark error of dlib and of the ``aligned`` backend against the
  known warp targets (``demo_landmarks.json``), as mean point error / inter-ocular distance;
- learnability: logistic regression and a small MLP (torch, CPU) on HOG features and on raw
  32x32 grey pixels, trained on train and scored on test, split into the held-out photo and
  the seen photos; chance is 1/7 = 14.3 %;
- leave-one-identity-out: for each of the three identities, a set whose training photos exclude
  that person entirely and whose test split is only that person.

Writes benchmarks/results/demo_data_quality.json and prints a summary.
Run: ``.venv/bin/python benchmarks/demo_data_quality.py [--quick]``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from occlusion_synth.demodata import build_demo_dataset
from occlusion_synth.errors import NoFaceError
from occlusion_synth.landmarks import detect
from occlusion_synth.landmarks.schemes import inter_ocular_distance
from occlusion_synth.sources import rafdb

REPO = Path(__file__).resolve().parents[1]
CACHE = REPO / ".cache"
OUT = REPO / "benchmarks" / "results" / "demo_data_quality.json"
LOIO = {  # identity -> (train photos without that identity, test photos = that identity only)
    "collins": (("obama.jpg", "obama2.jpg", "obama3.jpg", "biden.jpg"), ("astronaut.png",)),
    "obama": (("astronaut.png", "biden.jpg"), ("obama.jpg", "obama2.jpg", "obama3.jpg")),
    "biden": (("astronaut.png", "obama.jpg", "obama2.jpg", "obama3.jpg"), ("biden.jpg",)),
}


def load(root: Path):
    info = json.loads((root / "demo_info.json").read_text())
    meta = {s["id"]: s for s in info["samples"]}
    lms = json.loads((root / "demo_landmarks.json").read_text())["landmarks"]
    recs = [r for r in rafdb.iter_samples(root)]
    images = np.stack([r.load() for r in recs])
    return recs, images, meta, lms


def features(images: np.ndarray, kind: str) -> np.ndarray:
    grey = [cv2.cvtColor(im, cv2.COLOR_RGB2GRAY) for im in images]
    if kind == "pixels":
        x = np.stack([cv2.resize(g, (32, 32), interpolation=cv2.INTER_AREA).ravel() for g in grey])
    else:
        hog = cv2.HOGDescriptor((64, 64), (16, 16), (8, 8), (8, 8), 9)
        x = np.stack([hog.compute(cv2.resize(g, (64, 64), interpolation=cv2.INTER_AREA)).ravel() for g in grey])
    return x.astype(np.float32)


def train_eval(xtr, ytr, xte, model: str, seed: int = 0) -> np.ndarray:
    """Fit on (xtr, ytr), return predictions on xte. Full-batch Adam, fixed epochs, no tuning on test."""
    torch.manual_seed(seed)
    mu, sd = xtr.mean(0), xtr.std(0) + 1e-6
    a, b = torch.tensor((xtr - mu) / sd), torch.tensor((xte - mu) / sd)
    y = torch.tensor(ytr, dtype=torch.long)
    d = a.shape[1]
    net = (torch.nn.Linear(d, 7) if model == "logreg" else
           torch.nn.Sequential(torch.nn.Dropout(0.2), torch.nn.Linear(d, 128), torch.nn.ReLU(), torch.nn.Linear(128, 7)))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, weight_decay=1e-3)
    for _ in range(300):
        net.train()
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(net(a), y)
        loss.backward()
        opt.step()
    net.eval()
    with torch.no_grad():
        return net(b).argmax(1).numpy()


def learnability(train_root: Path, test_root: Path | None = None) -> dict:
    recs, images, meta, _ = load(train_root)
    tr = [i for i, r in enumerate(recs) if r.split == "train"]
    if test_root is None:
        te_recs, te_images, te_meta = recs, images, meta
        te = [i for i, r in enumerate(recs) if r.split == "test"]
    else:
        te_recs, te_images, te_meta, _ = load(test_root)
        te = [i for i, r in enumerate(te_recs) if r.split == "test"]
    ytr = np.array([recs[i].label for i in tr])
    yte = np.array([te_recs[i].label for i in te])
    held = np.array([te_meta[te_recs[i].id]["held_out_photo"] for i in te])
    out = {}
    for kind in ("hog", "pixels"):
        ftr, fte = features(images[tr], kind), features(te_images[te], kind)
        for model in ("logreg", "mlp"):
            pred = train_eval(ftr, ytr, fte, model)
            ok = pred == yte
            res = {"test_acc": round(float(ok.mean()), 4), "n_test": int(len(ok))}
            if held.any() and (~held).any():
                res["held_out_photo_acc"] = round(float(ok[held].mean()), 4)
                res["seen_photo_acc"] = round(float(ok[~held].mean()), 4)
            per_class = [round(float(ok[yte == c].mean()), 3) for c in range(7)]
            res["per_class_acc"] = per_class
            out[f"{model}_{kind}"] = res
    return out


def detection(root: Path, limit: int | None) -> dict:
    recs, images, _, lms = load(root)
    idx = range(len(recs)) if limit is None else range(min(limit, len(recs)))
    res: dict = {"n": len(idx)}
    for up in (0, 1, 2):
        found, errs, t0 = 0, [], time.perf_counter()
        for i in idx:
            try:
                face = detect(images[i], backend="dlib", upsample=up)[0]
            except NoFaceError:
                continue
            found += 1
            truth = np.asarray(lms[recs[i].id])
            errs.append(np.linalg.norm(face.landmarks - truth, axis=1).mean() / inter_ocular_distance(truth))
        res[f"dlib_hog_upsample{up}"] = {
            "detection_rate": round(found / len(idx), 4),
            "landmark_nme_iod": round(float(np.mean(errs)), 4) if errs else None,
            "ms_per_image": round(1000 * (time.perf_counter() - t0) / len(idx), 2)}
    errs = []
    for i in idx:
        truth = np.asarray(lms[recs[i].id])
        face = detect(images[i], backend="aligned")[0]
        errs.append(np.linalg.norm(face.landmarks - truth, axis=1).mean() / inter_ocular_distance(truth))
    res["aligned"] = {"landmark_nme_iod": round(float(np.mean(errs)), 4),
                      "landmark_nme_iod_p90": round(float(np.percentile(errs, 90)), 4)}
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller sets (for a smoke run)")
    args = ap.parse_args()
    per, test = (20, 10) if args.quick else (60, 20)
    result: dict = {
        "machine": {"cpu_count": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__},
        "options": {"per_class": per, "test_per_class": test, "size": 100, "seed": 0}}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "demo"
        build_demo_dataset(root, per_class=1, test_per_class=0, cache_dir=CACHE)  # warm the caches
        t0, c0 = time.perf_counter(), time.process_time()
        build_demo_dataset(root, per_class=per, test_per_class=test, seed=0, cache_dir=CACHE, overwrite=True)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        n = 7 * (per + test)
        result["build"] = {"faces": n, "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
                           "ms_per_face_cpu": round(1000 * cpu / n, 1)}
        print(f"build: {n} faces in {wall:.1f} s wall ({cpu:.1f} s CPU)")
        result["detection"] = detection(root, None)
        print("detection:", json.dumps(result["detection"]))
        result["learnability"] = learnability(root)
        print("learnability:", json.dumps(result["learnability"]))
        result["leave_one_identity_out"] = {}
        for ident, (train_photos, test_photos) in LOIO.items():
            sub = Path(tmp) / f"loio_{ident}"
            build_demo_dataset(sub, per_class=per, test_per_class=test, seed=1, cache_dir=CACHE,
                               train_photos=train_photos, test_photos=test_photos)
            res = learnability(sub)
            result["leave_one_identity_out"][ident] = {k: v["test_acc"] for k, v in res.items()}
            print(f"leave out {ident}:", result["leave_one_identity_out"][ident])
    result["chance"] = round(1 / 7, 4)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
