"""fer_pi: occluded facial expression recognition with privileged information (Pan et al., MM 2019).

A clean-face network (teacher, frozen after pre-training) guides an occluded-face network
(student) through similarity, loss-inequality, adversarial and reconstruction losses.

The public API is listed in ``__all__``; names load lazily, so ``import fer_pi`` does not import
torch (its submodules do). Typical use::

    import fer_pi

    cfg = fer_pi.configure("full", "demo", {"data": "pairs/manifest.csv"}, out="runs/full")
    fer_pi.launch("train", cfg, "runs/full")          # pretrain into runs/full/pretrain, fine-tune
    result = fer_pi.evaluate_checkpoint("runs/full/best.pt", "pairs/manifest.csv")
    faces = fer_pi.predict_paths("runs/full/best.pt", ["photo.jpg"]).predictions
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> module that defines it
_LAZY = {
    # configuration and runs
    "TrainConfig": "fer_pi.config",
    "METHOD_PRESETS": "fer_pi.config",
    "SIZE_PRESETS": "fer_pi.config",
    "configure": "fer_pi.runs",
    "launch": "fer_pi.runs",
    "check_pretraining": "fer_pi.runs",
    "prepare_run_dir": "fer_pi.runs",
    # training phases (Algorithm 1)
    "pretrain": "fer_pi.engine",
    "finetune": "fer_pi.engine",
    "train": "fer_pi.engine",
    # checkpoints
    "load_checkpoint": "fer_pi.checkpoint",
    "save_checkpoint": "fer_pi.checkpoint",
    "pretraining_fingerprint": "fer_pi.checkpoint",
    # data and models
    "PairedDataset": "fer_pi.data",
    "read_manifest": "fer_pi.data",
    "build_backbone": "fer_pi.models",
    "load_for_inference": "fer_pi.models",
    # evaluation, prediction, reports, ablation
    "evaluate": "fer_pi.evaluation",
    "evaluate_checkpoint": "fer_pi.evaluation",
    "run_benchmark": "fer_pi.evaluation",
    "Predictor": "fer_pi.predict",
    "Prediction": "fer_pi.predict",
    "PredictResult": "fer_pi.predict",
    "predict_paths": "fer_pi.predict",
    "write_evaluation": "fer_pi.report",
    "write_demo_report": "fer_pi.report",
    "run_ablation": "fer_pi.ablation",
    # errors
    "FerPiError": "fer_pi.errors",
    "DataError": "fer_pi.errors",
    "WeightsNotFoundError": "fer_pi.errors",
    "NonFiniteError": "fer_pi.guards",
}

__all__ = sorted(_LAZY) + ["__version__"]

if TYPE_CHECKING:  # real types for type checkers and IDEs; nothing is imported at run time
    from .ablation import run_ablation
    from .checkpoint import load_checkpoint, pretraining_fingerprint, save_checkpoint
    from .config import METHOD_PRESETS, SIZE_PRESETS, TrainConfig
    from .data import PairedDataset, read_manifest
    from .engine import finetune, pretrain, train
    from .errors import DataError, FerPiError, WeightsNotFoundError
    from .evaluation import evaluate, evaluate_checkpoint, run_benchmark
    from .guards import NonFiniteError
    from .models import build_backbone, load_for_inference
    from .predict import Prediction, Predictor, PredictResult, predict_paths
    from .report import write_demo_report, write_evaluation
    from .runs import check_pretraining, configure, launch, prepare_run_dir


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'fer_pi' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
