"""Metric definitions applied to a training log, line by line, as SageMaker does."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class MetricDefinition:
    """A metric name and a regex whose first capture group holds the value."""

    name: str
    regex: str


@dataclass(frozen=True)
class MetricPoint:
    """One value of one metric, in the order the log printed it (step counts from 0)."""

    name: str
    value: float
    step: int


@dataclass
class MetricParser:
    """Feeds log lines through every definition; keeps all values of every metric.

    SageMaker reports the last value a regex matched as the metric's final value, so
    `final()` does too.
    """

    definitions: tuple[MetricDefinition, ...]
    _compiled: list[tuple[str, re.Pattern[str]]] = field(init=False, repr=False)
    _values: dict[str, list[float]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._compiled = []
        for definition in self.definitions:
            try:
                pattern = re.compile(definition.regex)
            except re.error as exc:
                raise ValueError(
                    f"metric {definition.name!r}: regex {definition.regex!r} is invalid: {exc}"
                ) from None
            if pattern.groups < 1:
                raise ValueError(
                    f"metric {definition.name!r}: regex {definition.regex!r} has no capture group"
                )
            self._compiled.append((definition.name, pattern))
        self._values = {definition.name: [] for definition in self.definitions}

    def feed(self, line: str) -> list[MetricPoint]:
        """The metric values found in one log line (SageMaker takes one per regex)."""
        points = []
        for name, pattern in self._compiled:
            match = pattern.search(line)
            if match is None:
                continue
            try:
                value = float(match.group(1))
            except (TypeError, ValueError):
                continue
            if math.isnan(value):
                continue
            history = self._values[name]
            points.append(MetricPoint(name, value, len(history)))
            history.append(value)
        return points

    def final(self) -> dict[str, float]:
        """The last value of every metric that appeared at least once."""
        return {name: values[-1] for name, values in self._values.items() if values}

    def history(self, name: str) -> tuple[float, ...]:
        return tuple(self._values.get(name, ()))


def definitions_from_request(items: Iterable[Mapping[str, str]]) -> tuple[MetricDefinition, ...]:
    """`AlgorithmSpecification.MetricDefinitions` of a request -> definitions."""
    return tuple(MetricDefinition(item["Name"], item["Regex"]) for item in items)
