"""fer_pi.metrics against hand computations."""
from __future__ import annotations

import math

import numpy as np
import pytest

from fer_pi import metrics

Y_TRUE = [0, 0, 1, 1, 1, 2, 2, 0]
Y_PRED = [0, 1, 1, 1, 2, 2, 0, 0]


def test_accuracy_and_confusion_by_hand():
    assert metrics.accuracy(Y_TRUE, Y_PRED) == pytest.approx(5 / 8)
    cm = metrics.confusion_matrix(Y_TRUE, Y_PRED, 4)
    expected = np.array([[2, 1, 0, 0],
                         [0, 2, 1, 0],
                         [1, 0, 1, 0],
                         [0, 0, 0, 0]])
    np.testing.assert_array_equal(cm, expected)
    pcs = metrics.per_class_accuracy(cm)
    np.testing.assert_allclose(pcs[:3], [2 / 3, 2 / 3, 1 / 2])
    assert math.isnan(pcs[3])  # no sample of class 3: nan, not 0


def test_confusion_rejects_out_of_range_and_length_mismatch():
    with pytest.raises(ValueError, match="outside"):
        metrics.confusion_matrix([0, 7], [0, 1], 7)
    with pytest.raises(ValueError, match="length"):
        metrics.accuracy([0, 1], [0])
    assert math.isnan(metrics.accuracy([], []))


def test_grouped_accuracy_by_category():
    cats = ["food", "hand", "food", "mask", "hand", "food", "mask", "hand"]
    table = metrics.grouped_accuracy(Y_TRUE, Y_PRED, cats)
    # food: idx 0,2,5 -> correct 0,2,5 = 3/3; hand: idx 1,4,7 -> correct 7 = 1/3; mask: 3,6 -> 3 = 1/2
    assert table == {"food": {"accuracy": 1.0, "n": 3, "correct": 3},
                     "hand": {"accuracy": 1 / 3, "n": 3, "correct": 1},
                     "mask": {"accuracy": 0.5, "n": 2, "correct": 1}}


def test_coverage_bins_edges_and_accuracy():
    fr = [0.0, 0.05, 0.1, 0.25, 0.49, 0.6, 1.0, float("nan")]
    assert metrics.coverage_bins(fr) == ["0-10%", "0-10%", "10-20%", "20-30%", "40-50%",
                                         "60-100%", "60-100%", "unknown"]
    table = metrics.coverage_accuracy(Y_TRUE, Y_PRED, fr)
    assert list(table) == ["0-10%", "10-20%", "20-30%", "40-50%", "60-100%", "unknown"]
    assert table["0-10%"] == {"accuracy": 0.5, "n": 2, "correct": 1}      # idx 0 right, 1 wrong
    assert table["60-100%"] == {"accuracy": 0.5, "n": 2, "correct": 1}    # idx 5 right, 6 wrong
    assert metrics.coverage_bins([0.5, 0.3], edges=(0.0, 0.5, 1.0)) == ["50-100%", "0-50%"]
    assert table["unknown"]["n"] == 1
    with pytest.raises(ValueError):
        metrics.coverage_bins([0.1], edges=(0.5, 0.2))


def test_mean_std_over_seeds():
    mean, std, n = metrics.mean_std([80.0, 82.0, 84.0])
    assert (mean, n) == (82.0, 3)
    assert std == pytest.approx(2.0)  # sample std: sqrt(((-2)^2 + 0 + 2^2) / 2)
    mean, std, n = metrics.mean_std([75.0, float("nan")])
    assert mean == 75.0 and n == 1 and math.isnan(std)
    assert metrics.mean_std([])[2] == 0


def test_classification_report_is_json_ready():
    import json

    names = ["neutral", "happiness", "sadness", "surprise"]
    rep = metrics.classification_report(Y_TRUE, Y_PRED, names, categories=["a"] * 8, fractions=[0.15] * 8)
    text = json.dumps(rep)  # no numpy types, NaN turned into null
    assert '"surprise": {"accuracy": null, "n": 0}' in text
    assert rep["n"] == 8 and rep["accuracy"] == pytest.approx(0.625)
    assert rep["per_category"]["a"]["n"] == 8
    assert rep["per_coverage_bin"] == {"10-20%": {"accuracy": 0.625, "n": 8, "correct": 5}}
