"""Where a resolved value came from: the layer, the file location or rule id, and why."""

from __future__ import annotations

import enum
from typing import NamedTuple

from trainspec.compiler._diagnostics import Location


class OriginKind(enum.IntEnum):
    """Layers, lowest precedence first; values match trainspec.v1.OriginKind."""

    BUILTIN = 1
    CATALOG = 2
    DEFAULTS = 3
    SPEC = 4
    OVERRIDE = 5
    INFERRED = 6


class Origin(NamedTuple):
    """One value's origin. `source` names a catalog entry or rule (`rule:batch.scale_by_devices`).

    A NamedTuple, not a frozen dataclass: resolve makes one per value of every spec.
    """

    kind: OriginKind
    location: Location | None = None
    source: str = ""
    reason: str = ""

    def describe(self) -> str:
        where = str(self.location) if self.location else self.source
        text = f"{self.kind.name.lower()} {where}".rstrip()
        return f"{text} ({self.reason})" if self.reason else text
