"""Training engine: steps (one D step, one student step), loops (epochs), phases (runs)."""
from .loops import accuracy, finetune_epoch, pretrain_epoch
from .phases import finetune, pretrain, resolve_val_split, train
from .steps import Forward, PrivilegedTask, discriminator_step, freeze, pretrain_step, student_step

__all__ = ["Forward", "PrivilegedTask", "accuracy", "discriminator_step", "finetune", "finetune_epoch",
           "freeze", "pretrain", "pretrain_epoch", "pretrain_step", "resolve_val_split", "student_step",
           "train"]
