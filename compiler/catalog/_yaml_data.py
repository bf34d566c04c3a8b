"""YAML data files (the packaged catalogs and rules): parsed with libyaml when PyYAML has
it (the same safe loading, several times faster than the pure-Python parser), or read
from a parsed JSON twin.

Even with libyaml, building the 225 entries of instances.yaml took ~20 ms of every
process, and the field and autotune rules ~5 ms more. `tools/gen_parsed_catalogs.py`
writes each parsed document beside its file as JSON, with the SHA-256 of the YAML it came
from; `read_yaml` uses the twin only when that hash is the file's, so an edited YAML file
is never shadowed by a stale twin.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import yaml
from trainspec.compiler.catalog import data_file

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

# Packaged YAML file -> its parsed JSON twin (tools/gen_parsed_catalogs.py).
PARSED_TWINS = {
    "instances.yaml": "instances.parsed.json",
    "fields.yaml": "fields.parsed.json",
    "hyperparameters.yaml": "hyperparameters.parsed.json",
}


def safe_load(text: str) -> Any:
    """`yaml.safe_load(text)`, with libyaml's parser when available."""
    return yaml.load(text, Loader=_LOADER)


def read_yaml(path: Any, twin: Any | None = None) -> Any:
    """The document in the YAML file `path` (a Path or importlib Traversable): from the
    parsed JSON file `twin` when it was made from this very text."""
    text = path.read_text(encoding="utf-8")
    if twin is not None:
        try:
            parsed = json.loads(twin.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            parsed = None
        if isinstance(parsed, dict) and parsed.get("source_sha256") == _sha256(text):
            return parsed["document"]
    return safe_load(text)


def read_packaged_yaml(name: str) -> Any:
    """The document in the packaged YAML file `name`, from its twin while that matches."""
    return read_yaml(data_file(name), data_file(PARSED_TWINS[name]))


def parsed_twin(path: Any) -> dict[str, Any]:
    """What tools/gen_parsed_catalogs.py writes for the YAML file `path`."""
    text = path.read_text(encoding="utf-8")
    return {"source": path.name, "source_sha256": _sha256(text), "document": safe_load(text)}


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


__all__ = ["PARSED_TWINS", "parsed_twin", "read_packaged_yaml", "read_yaml", "safe_load"]
