"""Diagnostics in the forms CI systems read: GitHub workflow annotations and SARIF 2.1.0.

GitHub turns `::error file=...,line=...::message` lines on stdout into annotations on the
pull request's diff; code-scanning tools (GitHub, GitLab, Azure DevOps) read SARIF.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
_GITHUB_LEVELS = {"error": "error", "warning": "warning", "note": "notice"}


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def github_annotations(diagnostics: Iterable[Any]) -> str:
    """One workflow command per diagnostic (GitHub Actions' `::error` syntax)."""
    lines = []
    for d in diagnostics:
        properties = [f"title={_escape_property(f'trainspec {d.code}')}"]
        if d.location is not None:
            properties.insert(0, f"file={_escape_property(d.location.path)}")
            if d.location.line:
                properties.insert(1, f"line={d.location.line}")
                properties.insert(2, f"col={max(d.location.column, 1)}")
        subject = f"{d.field_path}: " if d.field_path else ""
        message = subject + d.message + (f"\nhint: {d.hint}" if d.hint else "")
        level = _GITHUB_LEVELS[d.severity.value]
        lines.append(f"::{level} {','.join(properties)}::{_escape_data(message)}")
    return "\n".join(lines)


def sarif(diagnostics: Iterable[Any], version: str) -> str:
    """A SARIF 2.1.0 log with one run of trainspec and a result per diagnostic."""
    diagnostics = list(diagnostics)
    rules = sorted({d.code for d in diagnostics})
    results = []
    for d in diagnostics:
        result: dict[str, Any] = {
            "ruleId": d.code,
            "ruleIndex": rules.index(d.code),
            "level": d.severity.value,  # error, warning and note are SARIF's words too
            "message": {
                "text": (f"{d.field_path}: " if d.field_path else "")
                + d.message
                + (f" (hint: {d.hint})" if d.hint else "")
            },
        }
        if d.location is not None:
            physical: dict[str, Any] = {"artifactLocation": {"uri": d.location.path}}
            if d.location.line:
                physical["region"] = {
                    "startLine": d.location.line,
                    "startColumn": max(d.location.column, 1),
                }
            result["locations"] = [{"physicalLocation": physical}]
        if d.field_path:
            result["properties"] = {"fieldPath": d.field_path}
        results.append(result)
    log = {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "trainspec",
                        "version": version,
                        "rules": [{"id": code} for code in rules],
                    }
                },
                "results": results,
            }
        ],
    }
    return json.dumps(log, indent=2)
