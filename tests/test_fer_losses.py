"""Each loss term of fer_pi.losses against a hand computation on fixed tensors."""
from __future__ import annotations

import math

import pytest
import torch

from fer_pi import losses as L
from fer_fixtures import one_thread  # noqa: F401

pytestmark = pytest.mark.usefixtures("one_thread")

Y_O = torch.tensor([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
Y_C = torch.tensor([[1.0, 1.0, 1.0], [0.0, 0.0, 3.0]])
Y = torch.tensor([0, 2])


def _softmax(row):
    e = [math.exp(v) for v in row]
    return [v / sum(e) for v in e]


def _ce(row, k):
    return -math.log(_softmax(row)[k])


def test_loss_cls_is_mean_cross_entropy():
    expect = (_ce([2, 0, -1], 0) + _ce([0, 1, 0], 2)) / 2
    assert L.loss_cls(Y_O, Y).item() == pytest.approx(expect, rel=1e-6)


def test_loss_sim_probs_sums_classes_and_averages_batch():
    per = [sum((a - b) ** 2 for a, b in zip(_softmax(o), _softmax(c)))
           for o, c in zip(Y_O.tolist(), Y_C.tolist())]
    assert L.loss_sim(Y_O, Y_C).item() == pytest.approx(sum(per) / 2, rel=1e-6)
    # identical outputs -> 0; shift-invariance of probabilities (logits + const)
    assert L.loss_sim(Y_O, Y_O + 5.0).item() == pytest.approx(0.0, abs=1e-7)


def test_loss_sim_logits():
    per = [sum((a - b) ** 2 for a, b in zip(o, c)) for o, c in zip(Y_O.tolist(), Y_C.tolist())]
    assert L.loss_sim(Y_O, Y_C, on="logits").item() == pytest.approx(sum(per) / 2, rel=1e-6)
    with pytest.raises(ValueError):
        L.loss_sim(Y_O, Y_C, on="features")


def test_loss_ineq_hinge_per_sample():
    ce_o = [_ce([2, 0, -1], 0), _ce([0, 1, 0], 2)]
    ce_c = [_ce([1, 1, 1], 0), _ce([0, 0, 3], 2)]
    expect = sum(max(0.0, c - o) for c, o in zip(ce_c, ce_o)) / 2
    assert ce_c[0] > ce_o[0] and ce_c[1] < ce_o[1]  # only sample 0 violates Eq. 2
    assert L.loss_ineq(Y_O, Y_C, Y).item() == pytest.approx(expect, rel=1e-6)


def test_loss_ineq_teacher_side_detached():
    y_o = Y_O.clone().requires_grad_(True)
    y_c = Y_C.clone().requires_grad_(True)
    L.loss_ineq(y_o, y_c, Y).backward()
    assert y_c.grad is None
    assert y_o.grad is not None and y_o.grad.abs().sum() > 0


def test_loss_adv_is_minus_log_sigmoid():
    d = torch.tensor([0.5, -2.0, 3.0])
    expect = sum(-math.log(1 / (1 + math.exp(-v))) for v in d.tolist()) / 3
    assert L.loss_adv(d).item() == pytest.approx(expect, rel=1e-6)


def test_loss_disc_eq5():
    real, fake = torch.tensor([1.0, -1.0]), torch.tensor([0.0, 2.0])
    sig = lambda v: 1 / (1 + math.exp(-v))  # noqa: E731
    expect = (sum(-math.log(sig(v)) for v in real.tolist()) / 2
              + sum(-math.log(1 - sig(v)) for v in fake.tolist()) / 2)
    assert L.loss_disc(real, fake).item() == pytest.approx(expect, rel=1e-6)


def test_loss_rec_mean_squared_error():
    a = torch.zeros(1, 3, 2, 2)
    b = torch.zeros(1, 3, 2, 2)
    b[0, 0, 0, 0] = 0.5
    b[0, 2, 1, 1] = 1.0
    assert L.loss_rec(a, b).item() == pytest.approx((0.25 + 1.0) / 12, rel=1e-6)
