"""One training configuration (:class:`TrainConfig`), its presets, overrides and JSON form.

Method presets reproduce the eight rows of Table 1 of Pan et al. (2019) by switching loss terms;
size presets pick the architecture, resolution and schedule (``demo`` runs on a CPU in minutes,
``paper-rafdb`` / ``paper-affectnet`` are the paper's settings). The resolved config is written as
``config.json`` next to every run.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import FerPiError

ARCHS = ("resnet50", "resnet34", "resnet18", "tiny")
AMP_MODES = ("off", "bf16", "fp16")
LOG_MODES = ("csv", "tensorboard")
TEACHER_BN_MODES = ("eval", "batch")
SCHEDULERS = ("none", "cosine", "step")

#: Table 1 rows: which privileged-information terms each method switches on.
METHOD_PRESETS: dict[str, dict[str, bool]] = {
    "resnet": dict(use_sim=False, use_ineq=False, use_adv=False, use_rec=False),
    "sim": dict(use_sim=True, use_ineq=False, use_adv=False, use_rec=False),
    "lir": dict(use_sim=False, use_ineq=True, use_adv=False, use_rec=False),
    "sim_lir": dict(use_sim=True, use_ineq=True, use_adv=False, use_rec=False),
    "adv": dict(use_sim=False, use_ineq=False, use_adv=True, use_rec=False),
    "rec": dict(use_sim=False, use_ineq=False, use_adv=False, use_rec=True),
    "adv_rec": dict(use_sim=False, use_ineq=False, use_adv=True, use_rec=True),
    "full": dict(use_sim=True, use_ineq=True, use_adv=True, use_rec=True),
}

#: Size presets: architecture, resolution, schedule.
SIZE_PRESETS: dict[str, dict[str, Any]] = {
    # CPU minutes on a few hundred 64 px pairs; no pretrained weights needed.
    # Fine-tuning rates for a from-scratch net (pre-trained at 1e-3) and a discriminator that does
    # not win outright: from `fer-pi tune` on the demo val split (docs/results.md, issue 12).
    "demo": dict(arch="resnet18", weights="none", image_size=64, pretrain_epochs=10, epochs=6,
                 batch_size=16, lr_pretrain=1e-3, lr_teacher=1e-3, num_workers=0,
                 lr_student=3e-4, lr_disc=4e-5, lambda_adv=0.04, lambda_rec=10.0,
                 # the decoder starts from scratch at fine-tuning: at 1e-4 its 126 demo steps left
                 # colour blobs (val PSNR 17.6 dB); 1e-3 gives blurry faces (18.4 dB on val; the
                 # student's val accuracy per epoch 35.9 vs 33.7 % on average, within noise)
                 lr_decoder=1e-3,
                 threads=1),  # a shared 2-core box: one thread is far faster than two contended ones
    # Section 5.1: ResNet-50 initialised on ImageNet, RAF-DB faces resized to 88x88; the paper's
    # rates (student 2e-5, D 1e-4) are the TrainConfig defaults.
    "paper-rafdb": dict(arch="resnet50", weights="imagenet", image_size=88, pretrain_epochs=30,
                        epochs=30, batch_size=64, num_workers=8),
    # Section 5.1: AffectNet faces at 224x224 (layer2 tap is then the paper's 28x28x512).
    "paper-affectnet": dict(arch="resnet50", weights="imagenet", image_size=224, pretrain_epochs=10,
                            epochs=10, batch_size=64, num_workers=8),
}


@dataclass
class TrainConfig:
    """Every knob of pre-training and fine-tuning (one object, dumped as ``config.json``).

    Learning rates follow Section 5.1 (student 2e-5, discriminator 1e-4); the paper does not give
    the lambdas ("determined by grid search") so they default to 1.0, nor the optimiser (Adam).
    """

    # data
    data: str = ""                      # path to OUT/manifest.csv of `occsynth generate`
    train_split: str = "train"
    val_split: str = "auto"             # "auto": "val" if the manifest has one, else no selection
    test_split: str = "test"
    image_size: int = 88
    augment: bool = True
    on_the_fly: bool = False            # occlude clean images at load time (occlusion_synth.Occlude)
    templates: str = ""                 # on-the-fly template folder ("" = the shipped assets)
    landmarks: str = "aligned"          # on-the-fly landmarks: "aligned" (68-pt model) | "canonical"
    num_workers: int = 0
    # model
    arch: str = "resnet50"
    weights: str = "imagenet"           # "imagenet" | "none" | path to a state_dict/checkpoint
    num_classes: int = 7
    teacher: str = ""                   # checkpoint of a pretrained teacher (fine-tune phase)
    student: str = ""                   # checkpoint of a pretrained student (fine-tune phase)
    # phase 1: pretraining (teacher on clean, student on occluded, cross-entropy)
    pretrain_epochs: int = 10
    lr_pretrain: float = 1e-4
    pretrain_scheduler: str = "cosine"
    # phase 2: fine-tuning (Algorithm 1)
    method: str = "full"
    epochs: int = 10
    batch_size: int = 64
    lr_student: float = 2e-5            # paper: occluded network 2e-5
    lr_teacher: float = 1e-4            # teacher during pretraining (student uses lr_pretrain)
    lr_disc: float = 1e-4               # paper: discriminator 1e-4
    lr_decoder: float = 1e-4
    weight_decay: float = 0.0
    scheduler: str = "none"             # fine-tune schedule (paper: fixed learning rates)
    k1: int = 1                         # discriminator steps per round
    k2: int = 1                         # student steps per round
    lambda_sim: float = 1.0
    lambda_ineq: float = 1.0
    lambda_adv: float = 1.0
    lambda_rec: float = 1.0
    use_sim: bool = True
    use_ineq: bool = True
    use_adv: bool = True
    use_rec: bool = True
    sim_on: str = "probs"               # "probs" (softmax outputs) or "logits"
    # BN of the frozen teacher while fine-tuning: "eval" (running statistics) or "batch" (batch
    # statistics like the train-mode student, running statistics untouched); docs/training.md
    teacher_bn: str = "eval"
    # run
    seed: int = 0
    device: str = "auto"                # "auto" | "cpu" | "cuda" | "cuda:1" ...
    amp: str = "off"                    # "off" | "bf16" | "fp16" (CUDA)
    channels_last: bool = True          # used on CUDA only
    compile: bool = False               # torch.compile the nets in place (checkpoints unchanged)
    deterministic: bool = False         # cudnn deterministic algorithms
    threads: int = 0                    # torch CPU threads (0 = torch's default)
    log: str = "csv"                    # "csv" (summary.csv) | "tensorboard" (also OUT/tensorboard/)

    def __post_init__(self) -> None:
        self.validate()

    # ------------------------------------------------------------------ checks and conversion
    def validate(self) -> None:
        """Raise :class:`FerPiError` naming the first invalid field."""
        def bad(key: str, msg: str) -> None:
            raise FerPiError(f"config {key}={getattr(self, key)!r}: {msg}")

        if self.arch not in ARCHS:
            bad("arch", f"must be one of {', '.join(ARCHS)}")
        if self.amp not in AMP_MODES:
            bad("amp", f"must be one of {', '.join(AMP_MODES)}")
        for key in ("scheduler", "pretrain_scheduler"):
            if getattr(self, key) not in SCHEDULERS:
                bad(key, f"must be one of {', '.join(SCHEDULERS)}")
        if self.method not in METHOD_PRESETS:
            bad("method", f"must be one of {', '.join(METHOD_PRESETS)}")
        if self.log not in LOG_MODES:
            bad("log", f"must be one of {', '.join(LOG_MODES)}")
        if self.teacher_bn not in TEACHER_BN_MODES:
            bad("teacher_bn", f"must be one of {', '.join(TEACHER_BN_MODES)}")
        if self.sim_on not in ("probs", "logits"):
            bad("sim_on", "must be 'probs' or 'logits'")
        for key in ("image_size", "batch_size", "k1", "k2", "num_classes"):
            if getattr(self, key) < 1:
                bad(key, "must be >= 1")
        for key in ("epochs", "pretrain_epochs", "num_workers", "threads"):
            if getattr(self, key) < 0:
                bad(key, "must be >= 0")
        for key in ("lr_student", "lr_teacher", "lr_disc", "lr_decoder", "lr_pretrain"):
            if not getattr(self, key) > 0:
                bad(key, "must be > 0")
        for key in ("lambda_sim", "lambda_ineq", "lambda_adv", "lambda_rec", "weight_decay"):
            if getattr(self, key) < 0:
                bad(key, "must be >= 0")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (safe inside a ``weights_only`` checkpoint)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        """Build from a dict; unknown keys raise :class:`FerPiError` naming them."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise FerPiError(f"unknown config key(s): {', '.join(unknown)}")
        return cls(**data)

    def save(self, path: str | Path) -> None:
        """Write ``config.json`` atomically."""
        from occlusion_synth.io import atomic_write_bytes

        atomic_write_bytes(path, (json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n").encode())

    @classmethod
    def load(cls, path: str | Path) -> "TrainConfig":
        """Read a ``config.json`` written by :meth:`save`."""
        p = Path(path)
        try:
            return cls.from_dict(json.loads(p.read_text()))
        except (OSError, json.JSONDecodeError) as exc:
            raise FerPiError(f"{p}: cannot read config ({exc})") from None

    # ------------------------------------------------------------------ presets and overrides
    @classmethod
    def from_preset(cls, method_preset: str = "full", size_preset: str | None = None,
                    **kwargs: Any) -> "TrainConfig":
        """Config for a Table-1 row (``method_preset``) at a size preset, plus keyword overrides."""
        if method_preset not in METHOD_PRESETS:
            raise FerPiError(f"--preset {method_preset!r}: must be one of {', '.join(METHOD_PRESETS)}")
        values: dict[str, Any] = {}
        if size_preset is not None:
            if size_preset not in SIZE_PRESETS:
                raise FerPiError(f"--size {size_preset!r}: must be one of {', '.join(SIZE_PRESETS)}")
            values.update(SIZE_PRESETS[size_preset])
        values.update(METHOD_PRESETS[method_preset])
        values["method"] = method_preset
        values.update(kwargs)
        return cls.from_dict(values)

    def set_method(self, method_preset: str) -> None:
        """Switch the loss terms to those of a Table-1 row."""
        if method_preset not in METHOD_PRESETS:
            raise FerPiError(f"--preset {method_preset!r}: must be one of {', '.join(METHOD_PRESETS)}")
        for key, value in METHOD_PRESETS[method_preset].items():
            setattr(self, key, value)
        self.method = method_preset

    def replace(self, **kwargs: Any) -> "TrainConfig":
        """A copy with fields changed (validated)."""
        data = self.to_dict()
        data.update(kwargs)
        return TrainConfig.from_dict(data)

    def apply_overrides(self, items: list[str] | tuple[str, ...]) -> "TrainConfig":
        """Apply ``["key=value", ...]`` (the CLI's ``--set``) in place, converting to each field's type.

        Raises:
            FerPiError: unknown key, missing ``=``, or a value of the wrong type (names the key).
        """
        fields = {f.name: f for f in dataclasses.fields(self)}
        changes: dict[str, Any] = {}
        for item in items:
            if "=" not in item:
                raise FerPiError(f"--set {item!r}: expected key=value")
            key, raw = (s.strip() for s in item.split("=", 1))
            if key not in fields:
                raise FerPiError(f"--set {key}: unknown config key (valid: {', '.join(sorted(fields))})")
            changes[key] = _convert(key, raw, type(getattr(self, key)))
        checked = self.replace(**changes)  # validates; self is untouched when a value is bad
        for key in changes:
            setattr(self, key, getattr(checked, key))
        return self


def _convert(key: str, raw: str, kind: type) -> Any:
    if kind is bool:
        low = raw.lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise FerPiError(f"--set {key}={raw}: expected a boolean (true/false)")
    if kind in (int, float):
        try:
            return kind(raw)
        except ValueError:
            raise FerPiError(f"--set {key}={raw}: expected {kind.__name__}") from None
    return raw
