"""Checkpoint round trip, atomicity, errors, RNG state capture."""
from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from fer_pi.checkpoint import load_checkpoint, save_checkpoint
from fer_pi.errors import FerPiError
from fer_pi.models import build_backbone
from fer_pi.utils import get_rng_state, seed_everything, set_rng_state
from fer_fixtures import one_thread  # noqa: F401

pytestmark = pytest.mark.usefixtures("one_thread")


def test_round_trip_weights_only(tmp_path):
    model = build_backbone("tiny", None)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.randn(2, 3, 32, 32))[0].sum().backward()
    opt.step()
    payload = {"config": {"arch": "tiny", "lr": 1e-3}, "phase": "finetune", "epoch": 3,
               "student": model.state_dict(), "optim": {"student": opt.state_dict()},
               "rng": get_rng_state(), "metrics": {"val_acc": 0.5}}
    path = tmp_path / "last.pt"
    save_checkpoint(path, payload)
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temp file left behind
    back = load_checkpoint(path)
    assert back["epoch"] == 3 and back["config"] == payload["config"] and back["metrics"] == {"val_acc": 0.5}
    for k, v in model.state_dict().items():
        assert torch.equal(back["student"][k], v)
    opt2 = torch.optim.Adam(build_backbone("tiny", None).parameters(), lr=1e-3)
    opt2.load_state_dict(back["optim"]["student"])
    assert opt2.state_dict()["state"][0]["step"] == opt.state_dict()["state"][0]["step"]


def test_missing_and_corrupt_checkpoints(tmp_path):
    with pytest.raises(FerPiError, match="not found"):
        load_checkpoint(tmp_path / "none.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"definitely not a zip")
    with pytest.raises(FerPiError, match="bad.pt: corrupt"):
        load_checkpoint(bad)
    save_checkpoint(tmp_path / "empty.pt", {"epoch": 1})
    with pytest.raises(FerPiError, match="not a fer_pi checkpoint"):
        load_checkpoint(tmp_path / "empty.pt")


def test_rng_state_survives_weights_only_checkpoint(tmp_path):
    seed_everything(7)
    save_checkpoint(tmp_path / "c.pt", {"student": {}, "rng": get_rng_state()})
    first = (random.random(), float(np.random.rand()), torch.rand(3))
    set_rng_state(load_checkpoint(tmp_path / "c.pt")["rng"])
    second = (random.random(), float(np.random.rand()), torch.rand(3))
    assert first[:2] == second[:2] and torch.equal(first[2], second[2])
