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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--pretrained-run", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    args = ap.parse_args()
    pre = Path(args.pretrained_run)
    cfg = TrainConfig.from_preset("full", "demo", data=args.data, teacher=str(pre / "teacher.pt"),
                                  student=str(pre / "student.pt")).apply_overrides(args.overrides)
    out = Path(args.out)
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
