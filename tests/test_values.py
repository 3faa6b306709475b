"""The value helpers every reader shares: one finite check, one strict-JSON converter, one way
to flatten nested parameters (the names of CSV columns, tables and report axes)."""

from __future__ import annotations

import math

from spiketune._values import flatten, is_finite, nonfinite_to_none


def test_is_finite_takes_ints_and_floats_only() -> None:
    assert is_finite(1) and is_finite(-2.5) and is_finite(0)
    assert not any(is_finite(v) for v in (math.nan, math.inf, -math.inf, True, None, "1", [1]))


def test_nonfinite_to_none_reaches_into_dicts_and_lists() -> None:
    value = {"default": math.nan, "acc": 0.5, "curve": [1.0, math.inf, {"x": -math.inf}]}
    assert nonfinite_to_none(value) == {"default": None, "acc": 0.5,
                                        "curve": [1.0, None, {"x": None}]}
    assert nonfinite_to_none(math.nan) is None and nonfinite_to_none(3) == 3


def test_flatten_names_nested_choices_with_dots() -> None:
    params = {"lr": 0.1, "neuron": {"_name": "alif", "beta": 1, "k": {"_name": "x", "q": 2}},
              "shape": [64, 32]}
    assert flatten(params) == {"lr": 0.1, "neuron._name": "alif", "neuron.beta": 1,
                               "neuron.k._name": "x", "neuron.k.q": 2, "shape": [64, 32]}
