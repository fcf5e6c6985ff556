"""Metric code against values computed by hand."""

from __future__ import annotations

import pytest

from simulator.coder.evaluation import accuracy, cohen_kappa, macro_f1, per_class_f1, summary

# a: TP1 FP1 FN1 -> F1 0.5; b: TP2 FP1 FN0 -> P 2/3 R 1 F1 0.8; c: TP1 FP0 FN1 -> F1 2/3
TRUE = ["a", "a", "b", "b", "c", "c"]
PRED = ["a", "b", "b", "b", "c", "a"]


def test_accuracy():
    assert accuracy(TRUE, PRED) == pytest.approx(4 / 6)
    assert accuracy([], []) == 0.0


def test_per_class_and_macro_f1():
    assert per_class_f1(TRUE, PRED) == pytest.approx({"a": 0.5, "b": 0.8, "c": 2 / 3})
    assert macro_f1(TRUE, PRED) == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)


def test_class_never_predicted_counts_as_zero():
    # 'd' is named but absent from both: F1 0 pulls the macro down
    assert macro_f1(TRUE, PRED, labels=["a", "b", "c", "d"]) == pytest.approx(
        (0.5 + 0.8 + 2 / 3) / 4)
    assert per_class_f1(["x", "y"], ["x", "x"]) == pytest.approx({"x": 2 / 3, "y": 0.0})


def test_cohen_kappa():
    # po = 4/6; pe = (2*2 + 2*3 + 2*1) / 36 = 1/3; kappa = (2/3 - 1/3) / (2/3) = 0.5
    assert cohen_kappa(TRUE, PRED) == pytest.approx(0.5)
    assert cohen_kappa(["a", "b"], ["a", "b"]) == pytest.approx(1.0)
    assert cohen_kappa(["a", "a"], ["a", "a"]) == 1.0
    # systematic disagreement is worse than chance
    assert cohen_kappa(["a", "b", "a", "b"], ["b", "a", "b", "a"]) == pytest.approx(-1.0)


def test_length_mismatch_is_an_error():
    with pytest.raises(ValueError):
        accuracy(["a"], ["a", "b"])


def test_summary():
    s = summary(TRUE, PRED)
    assert s["n"] == 6
    assert s["accuracy"] == pytest.approx(0.6667)
    assert s["cohen_kappa"] == pytest.approx(0.5)
    assert s["macro_f1"] == pytest.approx(0.6556)
    assert s["per_class_f1"] == {"a": 0.5, "b": 0.8, "c": 0.6667}
