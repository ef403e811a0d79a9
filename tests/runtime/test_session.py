"""Builds as the runtime sees them: which parameters a user can set."""

from __future__ import annotations

from pathlib import Path

import pytest

from netderive.codegen.cache import Artifacts
from netderive.runtime.cli import _split_sets
from netderive.runtime.session import Build, UsageError, resolve_model


def param(name: str) -> dict:
    return {"name": name, "meaning": name, "domain": "(-inf, inf)", "lower": float("-inf"),
            "upper": float("inf"), "lower_closed": True, "upper_closed": True,
            "integer": False, "default": 0.5}


def test_internal_variables_are_not_parameters_a_user_sets() -> None:
    """A parameter that no quantity takes (the state of a saddle point, bound inside an
    item) is not offered: --set refuses it with the parameters a user can set."""
    manifest = {"params": [param("weight_decay"), param("theta_1")],
                "items": [{"name": "b_star", "internal": False, "arguments": ["weight_decay"]},
                          {"name": "_stage", "internal": True, "arguments": ["theta_1"]}]}
    b = Build(resolve_model("weight_decay"), Artifacts(Path("."), manifest), False, 0.0)
    assert b.inputs == ["weight_decay"]
    assert _split_sets(b, ["weight_decay=0.3"])[0] == {"weight_decay": 0.3}
    with pytest.raises(UsageError, match="theta_1 is an internal variable"):
        _split_sets(b, ["theta_1=1"])
