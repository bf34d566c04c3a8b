"""Containers over their limit: reported once, their entries not walked, cost flat."""

from __future__ import annotations

import pytest
from trainspec.compiler import SpecError
from trainspec.compiler._diagnostics import Location
from trainspec.compiler.check import _validate


def _spec(hyperparameters: int) -> dict:
    return {
        "training": {
            "name": "many",
            "hyperparameters": {f"h{i}": i for i in range(hyperparameters)},
        }
    }


def _type_checks(monkeypatch, tree: dict) -> tuple[int, list]:
    """How many values cerberus type-checked while rejecting `tree`, and the problems."""
    calls = []
    original = _validate._validator_class()._validate_type

    def counting(self, data_type, field, value):
        calls.append(field)
        return original(self, data_type, field, value)

    monkeypatch.setattr(_validate._validator_class(), "_validate_type", counting)
    _validate._per_thread.__dict__.pop("validators", None)  # a fresh validator sees the spy
    with pytest.raises(SpecError) as caught:
        _validate.validate_layer("spec.yaml", tree, {(): Location("spec.yaml", 1, 1)}, {})
    _validate._per_thread.__dict__.pop("validators", None)
    return len(calls), list(caught.value.diagnostics)


def test_an_over_long_map_is_one_problem_and_its_entries_are_not_walked(monkeypatch):
    walked_101, problems_101 = _type_checks(monkeypatch, _spec(101))
    walked_1000, problems_1000 = _type_checks(monkeypatch, _spec(1000))
    assert walked_1000 == walked_101 < 20
    assert [(d.code, d.field_path) for d in problems_1000] == [
        ("spec.length", "training.hyperparameters")
    ]
    assert problems_1000[0].message == "has 1000 entries; must have at most 100"
    assert len(problems_101) == 1
