"""Plan diffs as text, JSON and Markdown (a pull-request comment); byte-stable for the
same diffs.

Each entry is (label, PlanDiff): the label names the spec (or the two files) compared.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from trainspec.compiler._plan_diff import ABSENT, RISKS, Envelope, PlanDiff

Entry = tuple[str, PlanDiff]


def _value(value: Any) -> str:
    if value is ABSENT:
        return "(unset)"
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True)


def _duration(seconds: int) -> str:
    hours, rest = divmod(seconds, 3600)
    minutes = rest // 60
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{rest % 60:02d}s"


def _signed(number: float) -> str:
    return f"+{number:.2f}" if number >= 0 else f"{number:.2f}"


def envelope_lines(diff: PlanDiff) -> list[str]:
    """The cost and duration envelope, old -> new, with its delta."""
    old, new = diff.old_envelope, diff.new_envelope
    if old is None or new is None:
        only = new or old
        assert only is not None
        return [
            f"worst-case cost {only.worst_case_cost:.2f} {only.currency}",
            f"max duration {_duration(only.worst_case_seconds)}",
        ]
    return [_cost_line(old, new), _duration_line(old, new)]


def _cost_line(old: Envelope, new: Envelope) -> str:
    rise = new.worst_case_cost - old.worst_case_cost
    if not rise:
        return f"worst-case cost {new.worst_case_cost:.2f} {new.currency} (unchanged)"
    share = f", {rise / old.worst_case_cost * 100:+.1f}%" if old.worst_case_cost else ""
    return (
        f"worst-case cost {old.worst_case_cost:.2f} -> {new.worst_case_cost:.2f} "
        f"{new.currency} ({_signed(rise)}{share})"
    )


def _duration_line(old: Envelope, new: Envelope) -> str:
    if old.worst_case_seconds == new.worst_case_seconds:
        return f"max duration {_duration(new.worst_case_seconds)} (unchanged)"
    delta = new.worst_case_seconds - old.worst_case_seconds
    sign = "+" if delta > 0 else "-"
    return (
        f"max duration {_duration(old.worst_case_seconds)} -> "
        f"{_duration(new.worst_case_seconds)} ({sign}{_duration(abs(delta))})"
    )


def _made_by(diff: PlanDiff) -> list[str]:
    """The versions that made each side, when they differ: a catalog update or a new
    trainspec explains a change no spec made."""
    old, new = diff.versions
    return [f"made by {old} -> {new}"] if old and new and old != new else []


def _status_word(diff: PlanDiff) -> str:
    return {
        "added": "new spec",
        "removed": "spec removed",
        "changed": f"{len(diff.changes)} change(s)",
        "unchanged": "unchanged",
    }[diff.status]


def text(entries: Sequence[Entry], old_name: str, new_name: str) -> str:
    lines: list[str] = []
    for label, diff in entries:
        lines.append(f"{label}: {_status_word(diff)} ({old_name} -> {new_name})")
        if not diff.different:
            continue
        lines.extend("  " + line for line in envelope_lines(diff) + _made_by(diff))
        for risk in diff.risks:
            lines.append(f"  ! risk[{risk.code}] {risk.path}: {risk.message}")
        for group, changes in diff.grouped():
            lines.append(f"  {group}")
            for change in changes:
                lines.append(f"    {change.path}: {_value(change.old)} -> {_value(change.new)}")
                if change.old_origin or change.new_origin:
                    if change.old_origin == change.new_origin:
                        lines.append(f"        from {change.old_origin}")
                    else:
                        lines.append(f"        was  {change.old_origin or '-'}")
                        lines.append(f"        now  {change.new_origin or '-'}")
    return "\n".join(lines)


def as_json(entries: Sequence[Entry], old_name: str, new_name: str) -> str:
    def envelope(e: Envelope | None) -> Any:
        return None if e is None else dict(e.__dict__)

    specs = []
    for label, diff in entries:
        specs.append(
            {
                "spec": label,
                "status": diff.status,
                "operation": diff.operation,
                "envelope": {
                    "old": envelope(diff.old_envelope),
                    "new": envelope(diff.new_envelope),
                },
                "risks": [r.__dict__ for r in diff.risks],
                "changes": [
                    {
                        "group": c.group,
                        "path": c.path,
                        **({} if c.old is ABSENT else {"old": c.old}),
                        **({} if c.new is ABSENT else {"new": c.new}),
                        "old_origin": c.old_origin,
                        "new_origin": c.new_origin,
                    }
                    for c in diff.changes
                ],
                "versions": {"old": diff.versions[0], "new": diff.versions[1]},
            }
        )
    document = {
        "old": old_name,
        "new": new_name,
        "different": any(d.different for _, d in entries),
        "specs": specs,
    }
    return json.dumps(document, indent=2, sort_keys=True)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown(entries: Sequence[Entry], old_name: str, new_name: str) -> str:
    changed = [(label, diff) for label, diff in entries if diff.different]
    lines = [f"## trainspec plan diff: `{old_name}` -> `{new_name}`", ""]
    if not changed:
        lines.append(f"No job changes in {len(entries)} spec(s).")
        return "\n".join(lines)
    risks = sum(len(d.risks) for _, d in changed)
    lines.append(
        f"{len(changed)} of {len(entries)} spec(s) change"
        + (f"; **{risks} risk(s) to review**." if risks else ".")
    )
    for label, diff in changed:
        lines += ["", f"### `{label}` ({_status_word(diff)})", ""]
        lines += [f"- {line}" for line in envelope_lines(diff) + _made_by(diff)]
        for risk in diff.risks:
            lines.append(f"- :warning: **{risk.code}** `{risk.path}`: {_cell(risk.message)}")
        for group, changes in diff.grouped():
            lines += ["", f"**{group}**", ""]
            lines.append("| field | old | new | origin (old -> new) |")
            lines.append("| --- | --- | --- | --- |")
            for c in changes:
                origin = (
                    c.new_origin
                    if c.old_origin == c.new_origin
                    else f"{c.old_origin or '-'} -> {c.new_origin or '-'}"
                )
                lines.append(
                    f"| `{_cell(c.path)}` | {_cell(_value(c.old))} | {_cell(_value(c.new))} "
                    f"| {_cell(origin)} |"
                )
    lines += ["", "<sub>Risk codes: " + ", ".join(sorted(RISKS)) + ".</sub>"]
    return "\n".join(lines)


RENDERERS = {"text": text, "json": as_json, "markdown": markdown}
