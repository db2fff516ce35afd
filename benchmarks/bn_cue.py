"""Is BatchNorm mode a cue for the discriminator? (issue 12, item 3)

During fine-tuning the frozen teacher runs in eval mode (running BN statistics) while the student
runs in train mode (batch statistics), so D could tell "teacher" from "student" features by how
they were normalised rather than by occlusion. This script fine-tunes the full method from a
pre-training and then scores the trained D on the SAME clean val images fed to both networks:

- teacher (as in training: eval, or batch statistics with ``teacher_bn=batch``) vs student in
  train mode (as D saw it during training) and student in eval mode;
- for reference, teacher on clean vs student on occluded (the intended cue).

Accuracy 0.5 = D cannot tell them apart. Usage::

    python benchmarks/bn_cue.py --data M --pretrained-run PRE --out DIR [--set teacher_bn=batch]
    python benchmarks/bn_cue.py --data M --pretrained-run PRE --out DIR --probes-only

``--probes-only`` isolates the cues: a fresh D is trained (5 epochs, Adam 1e-4, train split) to
separate two sets of layer2 features of the pre-trained networks and scored on the val split, for
BN mode alone (the same teacher, eval vs batch statistics, same images), network alone (teacher
vs student, same clean images, both eval), occlusion alone, and the pairs D sees in training.
"""
from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path

import torch

from fer_pi.checkpoint import load_checkpoint
from fer_pi.config import TrainConfig
from fer_pi.data import PairedDataset, build_loader
from fer_pi.engine import finetune
from fer_pi.engine.steps import batch_statistics
from fer_pi.models import Discriminator, load_for_inference


def d_accuracy(disc, teacher, student, loader, student_train: bool, teacher_batch: bool, occluded: bool) -> float:
    correct = total = 0
    for batch in loader:
        s = copy.deepcopy(student)  # train mode would update the running stats: use a copy
        s.train(student_train)
        with torch.no_grad():
            if teacher_batch:
                with batch_statistics(teacher):
                    h_c = teacher(batch["clean"])[1]
            else:
                h_c = teacher(batch["clean"])[1]
            h_s = s(batch["occluded" if occluded else "clean"])[1]
            real, fake = disc(h_c), disc(h_s)
        correct += int((real > 0).sum()) + int((fake < 0).sum())
        total += 2 * len(real)
    return correct / total


@torch.no_grad()
def features(net, loader, key: str, mode: str) -> torch.Tensor:
    """layer2 features of ``batch[key]`` with BN in ``mode``: eval (running statistics) or batch."""
    net.eval()
    out = []
    for batch in loader:
        if mode == "batch":
            with batch_statistics(net):
                out.append(net(batch[key])[1])
        else:
            out.append(net(batch[key])[1])
    return torch.cat(out)


def probe(real_tr, fake_tr, real_va, fake_va, epochs: int = 5, lr: float = 1e-4, seed: int = 0) -> float:
    """Held-out accuracy of a fresh D trained to separate two feature sets (0.5 = no cue)."""
    torch.manual_seed(seed)
    d = Discriminator(real_tr.shape[1])
    opt = torch.optim.Adam(d.parameters(), lr=lr)
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    n = len(real_tr)
    for _ in range(epochs):
        for idx in torch.randperm(n).split(16):
            logits = d(torch.cat([real_tr[idx], fake_tr[idx]]))
            target = torch.cat([torch.ones(len(idx)), torch.zeros(len(idx))])
            opt.zero_grad()
            bce(logits, target).backward()
            opt.step()
    with torch.no_grad():
        return float(((d(real_va) > 0).float().mean() + (d(fake_va) < 0).float().mean()) / 2)


def probes(data: str, teacher, student, size: int, batch: int) -> dict:
    """Which cues can a fresh D learn in 5 epochs? Train split to fit, val split to score."""
    tr = build_loader(PairedDataset(data, "train", size), batch, False, 0, 0)
    va = build_loader(PairedDataset(data, "val", size), batch, False, 0, 0)
    f = {}
    for split, loader in (("tr", tr), ("va", va)):
        f[split] = {"t_eval": features(teacher, loader, "clean", "eval"),
                    "t_batch": features(teacher, loader, "clean", "batch"),
                    "s_eval_clean": features(student, loader, "clean", "eval"),
                    "s_batch_clean": features(student, loader, "clean", "batch"),
                    "s_batch_occ": features(student, loader, "occluded", "batch")}
    pairs = {"bn_mode_only (teacher eval vs teacher batch-stats, same clean images)": ("t_eval", "t_batch"),
             "network_only (teacher vs student, both eval, same clean images)": ("t_eval", "s_eval_clean"),
             "as_trained (teacher eval on clean vs student batch-stats on occluded)": ("t_eval", "s_batch_occ"),
             "teacher_bn=batch (teacher batch-stats on clean vs student batch-stats on occluded)":
                 ("t_batch", "s_batch_occ"),
             "occlusion_only (student batch-stats, clean vs occluded)": ("s_batch_clean", "s_batch_occ")}
    return {name: probe(f["tr"][a], f["tr"][b], f["va"][a], f["va"][b]) for name, (a, b) in pairs.items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--pretrained-run", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    ap.add_argument("--probes-only", action="store_true",
                    help="only train fresh probe discriminators on the pre-training's networks")
    args = ap.parse_args()
    pre = Path(args.pretrained_run)
    cfg = TrainConfig.from_preset("full", "demo", data=args.data, teacher=str(pre / "teacher.pt"),
                                  student=str(pre / "student.pt")).apply_overrides(args.overrides)
    out = Path(args.out)
    if args.probes_only:
        teacher, _ = load_for_inference(pre / "teacher.pt", "teacher")
        student, _ = load_for_inference(pre / "student.pt", "student")
        res = probes(args.data, teacher, student, cfg.image_size, cfg.batch_size)
        print(json.dumps(res, indent=2))
        out.mkdir(parents=True, exist_ok=True)
        (out / "probes.json").write_text(json.dumps(res, indent=2) + "\n")
        return
    if not (out / "last.pt").is_file():
        finetune(cfg, out, progress=False)
    payload = load_checkpoint(out / "last.pt")
    teacher, _ = load_for_inference(pre / "teacher.pt", "teacher")
    student, _ = load_for_inference(out / "last.pt", "student")
    disc = Discriminator(student.feature_channels)
    disc.load_state_dict(payload["discriminator"])
    disc.eval()
    loader = build_loader(PairedDataset(args.data, "val", cfg.image_size), cfg.batch_size, False, 0, 0)
    tb = cfg.teacher_bn == "batch"
    res = {"teacher_bn": cfg.teacher_bn, "batch_size": cfg.batch_size,
           "same_clean_student_train": d_accuracy(disc, teacher, student, loader, True, tb, False),
           "same_clean_student_eval": d_accuracy(disc, teacher, student, loader, False, tb, False),
           "occluded_student_train": d_accuracy(disc, teacher, student, loader, True, tb, True),
           "occluded_student_eval": d_accuracy(disc, teacher, student, loader, False, tb, True),
           "final_loss_disc": payload["metrics"].get("loss_disc"), "final_loss_adv": payload["metrics"].get("loss_adv"),
           "val_acc": payload["metrics"].get("val_acc")}
    print(json.dumps(res, indent=2))
    (out / "bn_cue.json").write_text(json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
