"""Unit tests of model files: parse_model / load_model, ModelError, canonical text, with_values.

No subprocess and no sympy: everything here is the fast path that an unchanged
``netderive build`` takes.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import pytest

from netderive.derivations.model import ModelError, ModelSpec, load_model, parse_model

MODELS_DIR = Path(__file__).resolve().parents[2] / "models"

GOOD_TOML = """\
# a comment
family = "weight_decay"
description = "isotropic, D = 2"
depth = 2
widths = [4, 4]
noise_variance = 0.5
weight_decay = 0.2

[data]
input_covariance = [[1.0, 0.0], [0.0, 1.0]]
input_output_covariance = [1.0, 0.0]
output_variance = 2.0
"""

# The same content: other key order, inline table, ints for floats, 2.0 for an integer,
# other spacing and comments.
GOOD_TOML_REORDERED = """\
weight_decay=0.2
data = { output_variance = 2, input_output_covariance = [1, 0], input_covariance = [ [1, 0],
  [0, 1] ] }
noise_variance   =   0.5   # sigma^2
widths=[4,4]
depth = 2.0
description = 'isotropic, D = 2'
family='weight_decay'
"""


def good_raw() -> dict[str, Any]:
    return {
        "family": "weight_decay",
        "description": "isotropic, D = 2",
        "depth": 2,
        "widths": [4, 4],
        "noise_variance": 0.5,
        "weight_decay": 0.2,
        "data": {
            "input_covariance": [[1.0, 0.0], [0.0, 1.0]],
            "input_output_covariance": [1.0, 0.0],
            "output_variance": 2.0,
        },
    }


def assert_one_line_error(exc: ModelError, *must_contain: str) -> None:
    text = str(exc)
    assert text, "empty error message"
    assert "\n" not in text and "\r" not in text, f"not one line: {text!r}"
    assert "allowed" in text, text
    for part in must_contain:
        assert part in text, f"{part!r} not in {text!r}"


# -- good models -----------------------------------------------------------------------------


def test_good_model_parses() -> None:
    spec = parse_model(good_raw(), "good.toml")
    assert isinstance(spec, ModelSpec)
    assert spec.family == "weight_decay"
    assert spec.source == "good.toml"
    assert spec.stem == "good"
    assert spec["depth"] == 2 and isinstance(spec["depth"], int)
    assert spec["widths"] == (4, 4)
    assert spec["noise_variance"] == 0.5 and isinstance(spec["noise_variance"], float)
    assert spec["weight_decay"] == 0.2
    assert spec["data"]["input_covariance"] == ((1.0, 0.0), (0.0, 1.0))
    assert spec["data"]["input_output_covariance"] == (1.0, 0.0)
    assert spec["data"]["output_variance"] == 2.0
    assert spec.get("description") == "isotropic, D = 2"
    assert spec.get("no such key", 7) == 7


def test_defaults_are_filled_in() -> None:
    raw = good_raw()
    del raw["noise_variance"], raw["description"]
    spec = parse_model(raw, "defaults.toml")
    assert spec["noise_variance"] == 0.0
    assert "description" not in spec.values


def test_per_layer_weight_decay_list() -> None:
    raw = good_raw()
    raw["weight_decay"] = [0.1, 0.2, 0.3]  # depth + 1 entries
    spec = parse_model(raw, "layers.toml")
    assert spec["weight_decay"] == (0.1, 0.2, 0.3)


def test_depth_one_and_anisotropic_data() -> None:
    raw = good_raw()
    raw["depth"], raw["widths"] = 1, [1]
    raw["data"] = {
        "input_covariance": [[2.0, 0.5, 0.0], [0.5, 1.0, 0.1], [0.0, 0.1, 0.5]],
        "input_output_covariance": [0.3, -0.2, 0.1],
        "output_variance": 1.0,
    }
    spec = parse_model(raw, "aniso.toml")
    assert spec["depth"] == 1 and spec["widths"] == (1,)
    assert len(spec["data"]["input_covariance"]) == 3


@pytest.mark.parametrize("path", sorted(MODELS_DIR.glob("*.toml")), ids=lambda p: p.stem)
def test_bundled_models_load(path: Path) -> None:
    spec = load_model(path)
    want = ("large_deviation" if path.stem.startswith("ld_") else "expectation"
            if path.stem.startswith("expectation") else "weight_decay")
    assert spec.family == want
    assert spec.source == str(path)
    assert spec.stem == path.stem


def test_load_model_file(tmp_path: Path) -> None:
    path = tmp_path / "my model.toml"
    path.write_text(GOOD_TOML)
    spec = load_model(path)
    assert spec == parse_model(good_raw(), str(path))
    assert spec.stem == "my model"
    assert load_model(str(path)).canonical() == spec.canonical()


# -- bad models: each a one-line ModelError naming the key and what is allowed --------------


def _set(path: str, value: Any):
    """A mutation of the good raw model: set (or, with value DELETE, delete) a key."""

    def mutate(raw: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target = raw
        for p in parents:
            target = target[p]
        if value is DELETE:
            del target[last]
        else:
            target[last] = value

    return mutate


DELETE = object()

BAD_CASES = [
    # id, mutation, substrings the message must contain (besides "allowed")
    ("depth-string", _set("depth", "two"), ["depth"]),
    ("depth-float", _set("depth", 2.5), ["depth"]),
    ("depth-bool", _set("depth", True), ["depth"]),
    ("depth-zero", _set("depth", 0), ["depth", ">= 1"]),
    ("depth-negative", _set("depth", -1), ["depth"]),
    ("depth-missing", _set("depth", DELETE), ["depth", "missing"]),
    ("widths-zero", _set("widths", [4, 0]), ["widths", ">= 1"]),
    ("widths-negative", _set("widths", [-4, 4]), ["widths"]),
    ("widths-wrong-length", _set("widths", [4]), ["widths", "depth"]),
    ("widths-not-a-list", _set("widths", 4), ["widths", "list"]),
    ("widths-strings", _set("widths", ["4", "4"]), ["widths"]),
    ("widths-float", _set("widths", [4.5, 4]), ["widths"]),
    ("widths-empty", _set("widths", []), ["widths"]),
    ("widths-missing", _set("widths", DELETE), ["widths", "missing"]),
    ("noise-negative", _set("noise_variance", -0.1), ["noise_variance"]),
    ("noise-nan", _set("noise_variance", math.nan), ["noise_variance"]),
    ("noise-inf", _set("noise_variance", math.inf), ["noise_variance"]),
    ("noise-string", _set("noise_variance", "0.5"), ["noise_variance"]),
    ("decay-negative", _set("weight_decay", -0.2), ["weight_decay", "(0, 1e8]"]),
    ("decay-zero", _set("weight_decay", 0.0), ["weight_decay", "(0, 1e8]"]),
    ("decay-nan", _set("weight_decay", math.nan), ["weight_decay"]),
    ("decay-string", _set("weight_decay", "0.2"), ["weight_decay"]),
    ("decay-list-negative", _set("weight_decay", [0.1, -0.2, 0.3]), ["weight_decay"]),
    ("decay-list-length", _set("weight_decay", [0.1, 0.2]), ["weight_decay", "depth+1"]),
    ("decay-missing", _set("weight_decay", DELETE), ["weight_decay", "missing"]),
    ("family-unknown", _set("family", "relu_net"), ["family", "weight_decay"]),
    ("family-missing", _set("family", DELETE), ["family", "weight_decay"]),
    ("family-number", _set("family", 3), ["family", "weight_decay"]),
    ("family-list", _set("family", ["weight_decay"]), ["family", "weight_decay"]),
    ("unknown-key", _set("learning_rate", 0.1), ["learning_rate", "depth"]),
    ("activation-irrelevant", _set("activation", "relu"), ["activation"]),
    ("activation-in-decay", _set("weight_decay", "relu(x)"), ["weight_decay"]),
    ("description-number", _set("description", 5), ["description", "string"]),
    ("data-missing", _set("data", DELETE), ["data"]),
    ("data-not-a-table", _set("data", 3), ["data"]),
    ("data-unknown-key", _set("data.mean", 1.0), ["data.mean", "input_covariance"]),
    ("cov-missing", _set("data.input_covariance", DELETE), ["data.input_covariance"]),
    ("cov-string", _set("data.input_covariance", "identity"), ["data.input_covariance"]),
    ("cov-flat", _set("data.input_covariance", [1.0, 0.0]), ["data.input_covariance"]),
    ("cov-empty", _set("data.input_covariance", []), ["data.input_covariance"]),
    ("cov-not-square", _set("data.input_covariance", [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]),
     ["data.input_covariance", "square"]),
    ("cov-ragged", _set("data.input_covariance", [[1.0, 0.0], [0.0]]),
     ["data.input_covariance"]),
    ("cov-non-symmetric", _set("data.input_covariance", [[1.0, 0.5], [0.0, 1.0]]),
     ["data.input_covariance", "symmetric"]),
    ("cov-indefinite", _set("data.input_covariance", [[1.0, 2.0], [2.0, 1.0]]),
     ["data.input_covariance", "positive definite"]),
    ("cov-singular", _set("data.input_covariance", [[1.0, 1.0], [1.0, 1.0]]),
     ["data.input_covariance", "positive definite"]),
    ("cov-nan", _set("data.input_covariance", [[math.nan, 0.0], [0.0, 1.0]]),
     ["data.input_covariance"]),
    ("cov-string-entry", _set("data.input_covariance", [[1.0, "0"], [0.0, 1.0]]),
     ["data.input_covariance"]),
    ("exy-length", _set("data.input_output_covariance", [1.0, 0.0, 0.0]),
     ["data.input_output_covariance"]),
    ("exy-zero", _set("data.input_output_covariance", [0.0, 0.0]),
     ["data.input_output_covariance"]),
    ("exy-nan", _set("data.input_output_covariance", [math.nan, 0.0]),
     ["data.input_output_covariance"]),
    ("ey2-negative", _set("data.output_variance", -1.0), ["data.output_variance"]),
    ("ey2-list", _set("data.output_variance", [2.0]), ["data.output_variance"]),
    ("ey2-inconsistent", _set("data.output_variance", 0.5), ["data.output_variance"]),
    ("ey2-missing", _set("data.output_variance", DELETE), ["data.output_variance"]),
    # a key that contains a line break must not break the one-line error
    ("key-with-newline", _set("bad\nkey", 1), ["bad", "key"]),
    ("table-key-with-newline", _set("data.bad\nkey", 1), ["data.bad"]),
]


@pytest.mark.parametrize("mutate, must_contain",
                         [pytest.param(m, c, id=i) for i, m, c in BAD_CASES])
def test_bad_model_is_a_one_line_model_error(mutate, must_contain: list[str]) -> None:
    raw = copy.deepcopy(good_raw())
    mutate(raw)
    with pytest.raises(ModelError) as info:
        parse_model(raw, "bad-model.toml")
    assert_one_line_error(info.value, "bad-model.toml", *must_contain)


def test_model_error_attributes() -> None:
    raw = good_raw()
    raw["depth"] = 0
    with pytest.raises(ModelError) as info:
        parse_model(raw, "m.toml")
    exc = info.value
    assert (exc.source, exc.key) == ("m.toml", "depth")
    assert "1" in exc.allowed
    assert str(exc).startswith("m.toml: depth = 0: ")


def test_error_value_is_shortened() -> None:
    raw = good_raw()
    raw["widths"] = "x" * 500
    with pytest.raises(ModelError) as info:
        parse_model(raw, "m.toml")
    assert_one_line_error(info.value, "widths")
    assert len(str(info.value)) < 300


@pytest.mark.parametrize(
    "content, must_contain",
    [
        pytest.param(GOOD_TOML + "depth = = 3\n", ["file", "TOML"], id="syntax-error"),
        pytest.param(GOOD_TOML.replace("depth = 2", "depth = 2\ndepth = 3"),
                     ["file", "TOML"], id="duplicate-key"),
        pytest.param('family = "weight_decay\n', ["file", "TOML"], id="unterminated-string"),
        pytest.param("", ["family", "missing"], id="empty-file"),
        pytest.param(b"\xff\xfe\x00\x01", ["file", "UTF-8"], id="binary-file"),
        pytest.param(GOOD_TOML.replace("[data]", "[[data]]"), ["data", "table"],
                     id="array-of-tables"),
        pytest.param(GOOD_TOML.replace("weight_decay = 0.2", "weight_decay = nan"),
                     ["weight_decay"], id="nan"),
        pytest.param(GOOD_TOML.replace("weight_decay = 0.2", "weight_decay = -inf"),
                     ["weight_decay"], id="minus-inf"),
        pytest.param(GOOD_TOML + 'activation = "tanh(x)"\n', ["activation"],
                     id="activation-key-in-data"),
    ],
)
def test_bad_model_file(tmp_path: Path, content: str | bytes, must_contain: list[str]) -> None:
    path = tmp_path / "bad file.toml"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    with pytest.raises(ModelError) as info:
        load_model(path)
    assert_one_line_error(info.value, str(path), *must_contain)


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.toml"
    with pytest.raises(ModelError) as info:
        load_model(path)
    assert_one_line_error(info.value, str(path), "file", "no such file")


def test_directory_instead_of_file(tmp_path: Path) -> None:
    folder = tmp_path / "folder.toml"
    folder.mkdir()
    with pytest.raises(ModelError) as info:
        load_model(folder)
    assert_one_line_error(info.value, str(folder), "file")


# -- canonical text ---------------------------------------------------------------------------


def test_canonical_is_stable_across_formatting_and_key_order(tmp_path: Path) -> None:
    a, b = tmp_path / "a.toml", tmp_path / "sub" / "b.toml"
    b.parent.mkdir()
    a.write_text(GOOD_TOML)
    b.write_text(GOOD_TOML_REORDERED)
    spec_a, spec_b = load_model(a), load_model(b)
    assert spec_a.canonical() == spec_b.canonical()
    # the same from a mapping with other insertion orders (top level and in [data])
    raw = good_raw()
    reordered = {k: raw[k] for k in reversed(list(raw))}
    reordered["data"] = {k: raw["data"][k] for k in reversed(list(raw["data"]))}
    assert parse_model(reordered, "x.toml").canonical() == spec_a.canonical()
    # and repeatable
    assert spec_a.canonical() == load_model(a).canonical()


def test_canonical_does_not_depend_on_the_source() -> None:
    one = parse_model(good_raw(), "one.toml")
    two = parse_model(good_raw(), "/elsewhere/two.toml")
    assert one.canonical() == two.canonical()


@pytest.mark.parametrize(
    "mutate",
    [
        pytest.param(_set("weight_decay", 0.21), id="weight_decay"),
        pytest.param(_set("weight_decay", [0.2, 0.2, 0.2]), id="weight_decay-as-list"),
        pytest.param(_set("noise_variance", 0.25), id="noise_variance"),
        pytest.param(_set("widths", [4, 5]), id="widths"),
        pytest.param(_set("description", "other"), id="description"),
        pytest.param(_set("data.output_variance", 2.5), id="output_variance"),
        pytest.param(_set("data.input_output_covariance", [1.0, 0.1]), id="exy"),
        pytest.param(_set("data.input_covariance", [[1.0, 0.0], [0.0, 2.0]]), id="cov"),
    ],
)
def test_canonical_differs_when_a_value_changes(mutate) -> None:
    base = parse_model(good_raw(), "m.toml")
    raw = copy.deepcopy(good_raw())
    mutate(raw)
    assert parse_model(raw, "m.toml").canonical() != base.canonical()


def test_canonical_differs_with_depth() -> None:
    raw = good_raw()
    raw["depth"], raw["widths"] = 3, [4, 4, 4]
    assert parse_model(raw, "m.toml").canonical() != parse_model(good_raw(),
                                                                 "m.toml").canonical()


# -- with_values -------------------------------------------------------------------------------


def test_with_values_revalidates_and_replaces() -> None:
    spec = parse_model(good_raw(), "m.toml")
    deeper = spec.with_values({"depth": 3, "widths": [4, 4, 4]}, source="m.toml (--set)")
    assert deeper["depth"] == 3 and deeper["widths"] == (4, 4, 4)
    assert deeper.source == "m.toml (--set)"
    assert deeper.canonical() != spec.canonical()
    # the original is untouched
    assert spec["depth"] == 2 and spec["widths"] == (4, 4)
    # no change: same canonical text, same source by default
    same = spec.with_values({})
    assert same.canonical() == spec.canonical() and same.source == spec.source
    # a value given as float that is whole is normalised to the same canonical text
    assert spec.with_values({"depth": 2.0}).canonical() == spec.canonical()


def test_with_values_completes_widths_of_a_new_depth() -> None:
    """Equal widths are repeated to a new depth; unequal ones make the error name widths."""
    spec = parse_model(good_raw(), "m.toml")
    assert spec.with_values({"depth": 3})["widths"] == (4, 4, 4)
    unequal = parse_model({**good_raw(), "widths": [4, 2]}, "m.toml")
    with pytest.raises(ModelError, match="widths"):
        unequal.with_values({"depth": 3})


def test_with_values_data_table() -> None:
    spec = parse_model(good_raw(), "m.toml")
    data = {**good_raw()["data"], "output_variance": 3.0}
    changed = spec.with_values({"data": data})
    assert changed["data"]["output_variance"] == 3.0
    assert changed.canonical() != spec.canonical()


@pytest.mark.parametrize(
    "overrides, must_contain",
    [
        pytest.param({"depth": 0}, ["depth"], id="depth-zero"),
        pytest.param({"depth": 3, "widths": [4, 4]}, ["widths"], id="depth-without-widths"),
        pytest.param({"depth": 2.5}, ["depth"], id="depth-fraction"),
        pytest.param({"widths": [4, 0]}, ["widths"], id="widths-zero"),
        pytest.param({"weight_decay": -1.0}, ["weight_decay"], id="decay-negative"),
        pytest.param({"weight_decay": math.nan}, ["weight_decay"], id="decay-nan"),
        pytest.param({"noise_variance": -0.5}, ["noise_variance"], id="noise-negative"),
        pytest.param({"family": "nope"}, ["family"], id="family"),
        pytest.param({"bogus": 1}, ["bogus"], id="unknown-key"),
        pytest.param({"data": {**good_raw()["data"], "output_variance": 0.5}},
                     ["data.output_variance"], id="inconsistent-data"),
        pytest.param({"data": {**good_raw()["data"],
                               "input_covariance": [[1.0, 2.0], [2.0, 1.0]]}},
                     ["data.input_covariance"], id="indefinite-data"),
    ],
)
def test_with_values_rejects_bad_values(overrides: dict[str, Any],
                                        must_contain: list[str]) -> None:
    spec = parse_model(good_raw(), "m.toml")
    with pytest.raises(ModelError) as info:
        spec.with_values(overrides, source="m.toml (--set)")
    assert_one_line_error(info.value, "m.toml (--set)", *must_contain)
    assert spec["depth"] == 2  # unchanged
