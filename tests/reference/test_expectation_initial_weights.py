"""The reference's initial weights (from ``[init]`` by the documented rule) against the
derivation's: the expectation check compares kernels that start from the derivation's
weights with a Monte Carlo that starts from the reference's own."""

from __future__ import annotations

import numpy as np
import pytest

from netderive.derivations.expectation import initial_weights as derived_weights
from netderive.derivations.model import load_model, parse_model
from netderive.models import bundled_model, bundled_model_paths
from netderive.runtime.families.expectation.reference import initial_weights

BUNDLED = [p.stem for p in bundled_model_paths() if load_model(p).family == "expectation"]


def _assert_same(spec, input_dim: int) -> None:
    ws, bs, v = derived_weights(spec, input_dim)
    ref = initial_weights(spec["init"], spec["widths"], input_dim)
    assert len(ref.hidden_weights) == len(ws) == len(spec["widths"])
    ours = (*ref.hidden_weights, *ref.hidden_biases, ref.output_weights)
    for a, b in zip(ours, (*ws, *bs, v), strict=True):
        assert a.shape == b.shape
        np.testing.assert_array_equal(a, b)  # the same draws, bit for bit


@pytest.mark.parametrize("stem", BUNDLED)
def test_bundled_models(stem: str) -> None:
    spec = load_model(bundled_model(stem))
    _assert_same(spec, len(spec["data"]["train_inputs"][0]))


@pytest.mark.parametrize(("widths", "seed"), [([4], 0), ([3, 5], 7), ([8, 8, 2], 2019),
                                              ([1], 2**40)])
def test_seeded_weights(widths: list[int], seed: int) -> None:
    raw = {"family": "expectation", "activation": "tanh(x)", "widths": widths,
           "learning_rate": 0.05, "noise_std": 0.1,
           "data": {"train_inputs": [[0.1, 0.2, 0.3], [-1.0, 0.5, 2.0]],
                    "train_targets": [0.5, -0.5], "test_inputs": [[0.0, 1.0, -1.0]]},
           "init": {"seed": seed}}
    spec = parse_model(raw, "seeded.toml")
    _assert_same(spec, 3)
    ref = initial_weights(spec["init"], spec["widths"], 3)
    assert all(not b.any() for b in ref.hidden_biases)  # b = 0


def test_the_rule_is_the_documented_one() -> None:
    """W_l ~ N(0, 1/fan-in) rows = units, then v ~ N(0, 1/n_L), drawn in that order."""
    ref = initial_weights({"seed": 5}, (3, 2), 4)
    rng = np.random.default_rng(5)
    np.testing.assert_array_equal(ref.hidden_weights[0], rng.standard_normal((3, 4)) / 2.0)
    np.testing.assert_array_equal(ref.hidden_weights[1], rng.standard_normal((2, 3)) / np.sqrt(3))
    np.testing.assert_array_equal(ref.output_weights, rng.standard_normal(2) / np.sqrt(2))
