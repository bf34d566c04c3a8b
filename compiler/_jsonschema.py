"""A JSON Schema (draft 2020-12) of spec files, from the same field model as the validator."""

from __future__ import annotations

import itertools
from typing import Any

from trainspec.compiler._fields import EnumInfo, FieldInfo, MessageInfo, job_spec
from trainspec.compiler.check._validate import field_rules

_JSON_TYPES = {"string": "string", "integer": "integer", "number": "number", "boolean": "boolean"}


def spec_json_schema() -> dict[str, Any]:
    """The schema of a spec file: a JobSpec with exactly one of `training` or `tuning`."""
    definitions: dict[str, Any] = {}
    root = _message(job_spec(), definitions)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://trainspec.dev/schemas/v1/job-spec.json",
        "title": "trainspec job spec",
        "description": "A training or tuning job spec (proto3 JSON of trainspec.v1.JobSpec).",
        **root,
        "oneOf": [{"required": ["training"]}, {"required": ["tuning"]}],
        "$defs": dict(sorted(definitions.items())),
    }


def _ref(message: MessageInfo, definitions: dict[str, Any]) -> dict[str, Any]:
    name = message.full_name.removeprefix("trainspec.v1.")
    if name not in definitions:
        definitions[name] = {}  # placeholder: messages may refer to themselves
        definitions[name] = _message(message, definitions)
    return {"$ref": f"#/$defs/{name}"}


def _message(message: MessageInfo, definitions: dict[str, Any]) -> dict[str, Any]:
    properties: dict[str, Any] = {}
    for field in message.fields.values():
        schema = _field(message, field, definitions)
        properties[field.name] = schema
        if field.json_name != field.name:
            properties[field.json_name] = schema
    out: dict[str, Any] = {
        "type": "object",
        "additionalProperties": False,
        "properties": properties,
    }
    exclusions = []
    for members in message.oneofs.values():
        spellings = {m: {m, message.fields[m].json_name} for m in members}
        for first, second in itertools.combinations(members, 2):
            for a, b in itertools.product(sorted(spellings[first]), sorted(spellings[second])):
                exclusions.append({"required": [a, b]})
    if exclusions:
        out["not"] = {"anyOf": exclusions}
    return out


def _field(message: MessageInfo, field: FieldInfo, definitions: dict[str, Any]) -> dict[str, Any]:
    rules = field_rules()["rules"].get(message.full_name, {}).get(field.name, {})
    if field.kind == "map":
        schema: dict[str, Any] = {
            "type": "object",
            "additionalProperties": _item(field, field.item_kind, definitions),
        }
        if "maxlength" in rules:
            schema["maxProperties"] = rules["maxlength"]
        if "keys_pattern" in rules:
            pattern = field_rules()["patterns"][rules["keys_pattern"]]
            schema["propertyNames"] = {"pattern": f"^(?:{pattern})$"}
        if "value_maxlength" in rules and field.item_kind == "scalar":
            schema["additionalProperties"] = {
                **schema["additionalProperties"],
                "maxLength": rules["value_maxlength"],
            }
    elif field.kind == "list":
        schema = {"type": "array", "items": _item(field, field.item_kind, definitions)}
        if "maxlength" in rules:
            schema["maxItems"] = rules["maxlength"]
        if "minlength" in rules:
            schema["minItems"] = rules["minlength"]
    else:
        schema = _item(field, field.kind, definitions)
        _apply_rules(schema, rules)
    schema = {"anyOf": [schema, {"type": "null"}]} if "$ref" in schema else schema
    return schema


def _apply_rules(schema: dict[str, Any], rules: dict[str, Any]) -> None:
    patterns = field_rules()["patterns"]
    if "pattern" in rules:
        schema["pattern"] = f"^(?:{patterns[rules['pattern']]})$"
    for ours, theirs in (
        ("min", "minimum"),
        ("max", "maximum"),
        ("minlength", "minLength"),
        ("maxlength", "maxLength"),
    ):
        if ours in rules:
            schema[theirs] = rules[ours]
    if "allowed" in rules:
        schema["enum"] = rules["allowed"]
    if rules.get("check") == "s3_uri":
        schema["pattern"] = "^s3://[a-z0-9][a-z0-9.\\-]{1,61}[a-z0-9](/.*)?$"
    if rules.get("check") == "positive":
        schema["exclusiveMinimum"] = 0


def _item(field: FieldInfo, kind: str, definitions: dict[str, Any]) -> dict[str, Any]:
    if kind == "message":
        assert field.message is not None
        ref = _ref(field.message, definitions)
        if field.message.full_name == "trainspec.v1.DataChannel":
            return {"anyOf": [{"type": "string", "description": "the channel's URI"}, ref]}
        return ref
    if kind == "enum":
        assert field.enum is not None
        return _enum(field.enum)
    if kind == "value":
        return {"type": ["string", "number", "boolean"]}
    if field.bounds is not None:  # what the proto integer type holds
        return {
            "type": _JSON_TYPES[field.scalar],
            "minimum": field.bounds[0],
            "maximum": field.bounds[1],
        }
    return {"type": _JSON_TYPES[field.scalar]}


def _enum(enum: EnumInfo) -> dict[str, Any]:
    """Short names for completion, and a pattern for every spelling the normalizer takes."""
    prefix = next(iter(enum.values))[: -len(next(iter(enum.short.values())))]

    def loose(word: str) -> str:
        return "".join(
            "[_-]?" if c == "_" else f"[{c.lower()}{c.upper()}]" if c.isalpha() else c for c in word
        )

    names = "|".join(loose(enum.short[v]) for v in enum.values)
    pattern = f"^(?:{loose(prefix)})?(?:{names})$"
    return {
        "anyOf": [
            {"enum": [enum.short[v] for v in enum.values]},
            {"type": "string", "pattern": pattern},
        ]
    }
