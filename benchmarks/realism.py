"""Realism figures of the occluders on real face crops, harmonisation off ("before") and on ("after").

Faces: the demo set's 100 px aligned faces (``occsynth demo-data``, built in a scratch folder with
its provided landmarks) and 100 px crops of the public-domain test photos (dlib landmarks). For
every face, category (food, hand, drink, mask, block) and seed, one placement is drawn and
replayed on variants of the same face:

* **brightness**: the photo darkened to 35 % -> mean luma of the occluder pixels (the mask)
  relative to the same placement on the original (target: <= 0.60; a real object keeps 0.35);
* **grey**: the photo converted to grey (equal channels) -> pairs whose output still has equal
  channels everywhere (target 100 %); also one-channel ``(H, W)`` input and a near-grey photo
  (+-2 levels of chroma noise: mean channel spread inside the occluder);
* **grain**: the photo with Gaussian noise (sigma 4) and JPEG (quality 80) -> Immerkaer noise
  level inside the occluder (mask eroded 2 px) / on the face around it (target 0.5-2 in every
  pair; the pairs outside are listed); also on the photo as it is ("clean");
* **outside**: pixels that changed but are not in the mask (target 0), defaults and shadow=True;
* **speed**: ``apply`` CPU time (``time.process_time``, OpenCV and BLAS on one thread as in
  the generation workers: a multi-threaded BLAS spinning on a shared core inflates CPU time) of every pair of a category with and without harmonisation, in passes
  over all pairs alternating the two, the fastest of ``SPEED_ROUNDS`` passes each, in ms per pair
  (as ``benchmarks/generate_speed.py``; target: harmonisation adds <= 1 ms per 100 px pair).

Writes benchmarks/results/realism.json; ``--sheets DIR`` also writes the before/after sheets
(columns: samples on the test photos; rows: photo, harmonisation off, on (default), mask), one per
category plus a darkened (35 %) and a grey photo.

    PYTHONPATH=. .venv/bin/python benchmarks/realism.py [--seeds 3] [--demo-per-class 4] [--sheets docs/images]
    PYTHONPATH=. .venv/bin/python benchmarks/realism.py --sheets-only --sheets docs/images
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from occlusion_synth import functional as F  # noqa: E402
from occlusion_synth.errors import PlacementError  # noqa: E402
from occlusion_synth.transforms import Occlude  # noqa: E402

CATEGORIES = ("food", "hand", "drink", "mask", "block")
DARKEN = 0.35
SPEED_ROUNDS = 3


def demo_faces(per_class: int, scratch: Path) -> list:
    from occlusion_synth.demodata import build_demo_dataset
    from occlusion_synth.sources import demo

    root = scratch / "demo"
    build_demo_dataset(root, per_class=per_class, test_per_class=1, cache_dir=REPO / ".cache")
    out = []
    for s in demo.iter_samples(root):
        if getattr(s, "landmarks", None) is not None:
            out.append(("demo/" + s.id, s.load(), np.asarray(s.landmarks, np.float64)))
    return out


def photo_faces(size: int = 100) -> list:
    from occlusion_synth.landmarks import detect
    from occlusion_synth.photos import fetch_photos
    from occlusion_synth.io import read_image
    from occlusion_synth.preview import crop_face

    out = []
    for name, path in sorted(fetch_photos(REPO / ".cache").items()):
        image = read_image(path)
        for i, face in enumerate(detect(image, backend="dlib", max_side=800, all_faces=False)):
            crop, lm = crop_face(image, face.landmarks, size)
            out.append((f"photo/{name}#{i}", crop, lm))
    return out


def grain(image: np.ndarray, mask: np.ndarray, face: np.ndarray) -> tuple[float, float]:
    y = F.luma(image)
    inner = cv2.erode(mask, np.ones((5, 5), np.uint8)) > 0
    ring = (face > 0) & (cv2.dilate(mask, np.ones((5, 5), np.uint8)) == 0)
    return F.noise_sigma(y, inner), F.noise_sigma(y, ring)


def noisy(image: np.ndarray, seed: int) -> np.ndarray:
    n = np.random.default_rng(seed).normal(0, 4.0, image.shape[:2])[..., None]
    x = np.clip(np.rint(image + n), 0, 255).astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", x[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 80])
    return np.ascontiguousarray(cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1])


def measure(faces: list, seeds: int) -> dict:
    res = {}
    for cat in CATEGORIES:
        after = Occlude(categories=(cat,))
        shadowed = Occlude(categories=(cat,), shadow=True)
        r = {k: [] for k in ("bright_after", "bright_before", "grain_after", "grain_before",
                              "grain_clean_after", "grain_clean_before", "near_grey_spread")}
        grain_outside, timed = [], []
        grey_ok = one_channel_ok = pairs = outside = outside_shadow = failed = 0
        for fi, (fname, img, lm) in enumerate(faces):
            face = F.face_region_mask(lm, img.shape[:2])
            dark = np.clip(np.rint(img * DARKEN), 0, 255).astype(np.uint8)
            grey1 = np.clip(np.rint(F.luma(img)), 0, 255).astype(np.uint8)
            grey = np.repeat(grey1[..., None], 3, axis=2)
            near = np.clip(grey.astype(int) + np.random.default_rng(fi).integers(-2, 3, img.shape), 0, 255)
            near = near.astype(np.uint8)
            nimg = noisy(img, fi)
            for s in range(seeds):
                try:
                    prm = after.get_params(img, lm, np.random.default_rng([s, fi]))
                except PlacementError:
                    failed += 1
                    continue
                pairs += 1
                # "before" replays the same placement with harmonisation off
                timed.append((img, prm))
                for name, pr in (("after", prm), ("before", replace(prm, harmonise=None))):
                    o, m = after.apply(img, pr)
                    if cat == "block":  # synthetic fills: no light or grain to take
                        continue
                    od, _ = after.apply(dark, pr)
                    sel = m > 0
                    r["bright_" + name].append(float(F.luma(od[sel]).mean() / max(F.luma(o[sel]).mean(), 1e-3)))
                    on, mn = after.apply(nimg, pr)
                    gi, go = grain(on, mn, face)
                    if go > 0 and gi >= 0:
                        r["grain_" + name].append(gi / go)
                        if name == "after" and not 0.5 <= gi / go <= 2.0:
                            grain_outside.append(f"{fname} seed {s} {prm.template}: {gi / go:.2f}")
                    gi, go = grain(o, m, face)
                    if go > 0 and gi >= 0:
                        r["grain_clean_" + name].append(gi / go)
                o, m = after.apply(img, prm)
                sel = m > 0
                outside += int((np.any(o != img, axis=2) & ~sel).sum())
                og, _ = after.apply(grey, prm)
                grey_ok += int((og == og[..., :1]).all())
                o1, _ = after.apply(grey1, prm)
                one_channel_ok += int(o1.ndim == 2 and o1.shape == grey1.shape)
                onr, mnr = after.apply(near, prm)
                sp = onr[mnr > 0].astype(int)
                r["near_grey_spread"].append(float((sp.max(1) - sp.min(1)).mean()))
                prm_s = shadowed.get_params(img, lm, np.random.default_rng([s, fi]))
                o, m = shadowed.apply(img, prm_s)
                outside_shadow += int((np.any(o != img, axis=2) & (m == 0)).sum())

        def q(v):
            v = np.asarray(v, float)
            if v.size == 0:
                return None
            return {"median": round(float(np.median(v)), 3), "p05": round(float(np.percentile(v, 5)), 3),
                    "p95": round(float(np.percentile(v, 95)), 3), "max": round(float(v.max()), 3)}

        ga, gc = np.asarray(r["grain_after"]), np.asarray(r["grain_clean_after"])
        speed = apply_ms(after, timed)
        res[cat] = {
            "pairs": pairs, "placement_failures": failed,
            "brightness_ratio_after": q(r["bright_after"]), "brightness_ratio_before": q(r["bright_before"]),
            "share_bright_ratio_le_0.6": round(float(np.mean(np.asarray(r["bright_after"]) <= 0.6)), 3)
            if r["bright_after"] else None,
            "grey_kept_grey": f"{grey_ok}/{pairs}", "one_channel_kept": f"{one_channel_ok}/{pairs}",
            "near_grey_spread_levels": q(r["near_grey_spread"]),
            "grain_ratio_after": q(ga), "grain_ratio_before": q(r["grain_before"]),
            "share_grain_in_0.5_2": round(float(np.mean((ga >= 0.5) & (ga <= 2.0))), 3) if ga.size else None,
            "grain_outside_0.5_2": grain_outside,
            "grain_ratio_clean_after": q(gc), "grain_ratio_clean_before": q(r["grain_clean_before"]),
            "share_grain_clean_in_0.5_2": round(float(np.mean((gc >= 0.5) & (gc <= 2.0))), 3) if gc.size else None,
            "changed_outside_mask": outside, "changed_outside_mask_shadow_on": outside_shadow,
            "apply_ms_after": round(speed["after"], 3), "apply_ms_before": round(speed["before"], 3),
        }
        res[cat]["harmonise_ms"] = round(res[cat]["apply_ms_after"] - res[cat]["apply_ms_before"], 3)
        print(cat, json.dumps(res[cat]), flush=True)
    return res


def apply_ms(occ: Occlude, pairs: list) -> dict:
    """CPU ms per ``apply`` of ``(image, params)`` pairs with ("after") and without ("before")
    harmonisation: the fastest of ``SPEED_ROUNDS`` passes over all pairs, the two alternating."""
    plain = [(img, replace(prm, harmonise=None)) for img, prm in pairs]
    best = {"after": float("inf"), "before": float("inf")}
    for _ in range(SPEED_ROUNDS):
        for name, jobs in (("after", pairs), ("before", plain)):
            t0 = time.process_time()
            for img, prm in jobs:
                occ.apply(img, prm)
            best[name] = min(best[name], time.process_time() - t0)
    return {k: 1000 * v / max(len(pairs), 1) for k, v in best.items()}


# ---------------------------------------------------------------------------------------- sheets
def _label(tile: np.ndarray, text: str) -> np.ndarray:
    strip = np.full((18, tile.shape[1], 3), 235, np.uint8)
    scale = 0.4
    while scale > 0.2 and cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)[0][0] > tile.shape[1] - 4:
        scale -= 0.02
    cv2.putText(strip, text, (2, 13), cv2.FONT_HERSHEY_SIMPLEX, scale, (20, 20, 20), 1, cv2.LINE_AA)
    return np.concatenate([strip, tile])


def before_after_sheet(faces: list, cat: str, n: int, transform=None, seed: int = 0) -> np.ndarray:
    """Columns: samples; rows: photo, before (harmonisation off), after (default), mask."""
    after = Occlude(categories=(cat,))
    cols = []
    for i in range(n):
        _, img, lm = faces[i % len(faces)]
        if transform is not None:
            img = transform(img)
        try:
            prm = after.get_params(img, lm, np.random.default_rng([seed, i]))
        except PlacementError:
            continue
        b, _ = after.apply(img, replace(prm, harmonise=None))
        a, m = after.apply(img, prm)
        name = prm.template if cat != "block" else f"block/{prm.template}"
        col = [_label(img, name.split("/")[-1][:18]), _label(b, "before"), _label(a, "after"),
               _label(np.repeat(m[..., None], 3, axis=2), "mask")]
        col = np.concatenate([np.pad(t, ((2, 2), (2, 2), (0, 0)), constant_values=255) for t in col])
        cols.append(col)
    return np.concatenate(cols, axis=1)


def save_palette(path: Path, sheet: np.ndarray) -> None:
    """A dithered 256-colour PNG (as ``occsynth preview --palette``), written atomically."""
    import io

    from PIL import Image

    from occlusion_synth.io import atomic_write_bytes

    quantized = Image.fromarray(sheet).quantize(256, method=Image.Quantize.MEDIANCUT,
                                                 dither=Image.Dither.FLOYDSTEINBERG)
    buf = io.BytesIO()
    quantized.save(buf, format="PNG", optimize=True)
    atomic_write_bytes(path, buf.getvalue())


def write_sheets(faces: list, out: Path) -> list:
    written = []
    dark = lambda im: np.clip(np.rint(im * DARKEN), 0, 255).astype(np.uint8)  # noqa: E731
    grey = lambda im: np.repeat(np.clip(np.rint(F.luma(im)), 0, 255).astype(np.uint8)[..., None], 3, 2)  # noqa: E731
    jobs = [(f"realism_{c}.png", c, None) for c in CATEGORIES]
    jobs += [("realism_dark.png", "hand", dark), ("realism_dark_mask.png", "mask", dark),
             ("realism_grey.png", "drink", grey), ("realism_grey_food.png", "food", grey)]
    for fname, cat, tf in jobs:
        sheet = before_after_sheet(faces, cat, 6, tf)
        save_palette(out / fname, sheet)
        written.append(str(out / fname))
    return written


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3, help="placements per face and category")
    ap.add_argument("--demo-per-class", type=int, default=4, help="demo set faces per class (train)")
    ap.add_argument("--json", type=Path, default=REPO / "benchmarks" / "results" / "realism.json",
                    help="where to write the figures")
    ap.add_argument("--sheets", type=Path, default=None, help="write before/after sheets into this folder")
    ap.add_argument("--sheets-only", action="store_true", help="only write the sheets (no figures)")
    ap.add_argument("--tile", type=int, default=160, help="sheet tile size in pixels")
    args = ap.parse_args()
    cv2.setNumThreads(1)
    if args.sheets_only:
        print("\n".join(write_sheets(photo_faces(args.tile), args.sheets or REPO / "docs" / "images")))
        return
    with tempfile.TemporaryDirectory() as tmp:
        faces = demo_faces(args.demo_per_class, Path(tmp)) + photo_faces(100)
    print(f"{len(faces)} faces ({sum(f[0].startswith('demo') for f in faces)} demo)", flush=True)
    from occlusion_synth.pairs.blas import single_thread_blas

    res = {"faces": len(faces), "seeds": args.seeds, "darken": DARKEN, "cpu_count": os.cpu_count(),
           "loadavg_before": [round(v, 2) for v in os.getloadavg()]}
    with single_thread_blas():
        res["categories"] = measure(faces, args.seeds)
    res["loadavg_after"] = [round(v, 2) for v in os.getloadavg()]
    if args.sheets:
        res["sheets"] = write_sheets(photo_faces(args.tile), args.sheets)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(res, indent=1) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
