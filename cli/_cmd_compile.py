"""`trainspec compile` and `trainspec catalog`."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

import click
from trainspec._errors import DIAGNOSTIC_FORMATS, handle_errors
from trainspec._options import (
    autotune_mode_option,
    defaults_option,
    set_option,
    stdin_filename_option,
)
from trainspec._stdin import SpecInput, spec_inputs

if TYPE_CHECKING:
    from trainspec.compiler import CompileOptions

STAGES = ["load", "validate", "resolve", "infer", "check", "lower", "emit"]


def plan_text(plan: Any, fmt: str) -> str:
    """The plan in one of the output formats; byte-identical for identical plans. JSON and
    YAML show the request with botocore's types; textproto carries them in
    `sagemaker_request_json`."""
    if fmt == "textproto":
        from google.protobuf import text_format

        return text_format.MessageToString(plan)
    from trainspec._plan import plan_document

    data = plan_document(plan)
    if fmt == "json":
        return json.dumps(data, indent=2, sort_keys=True)
    return plan_yaml(data)


def plan_yaml(data: Any) -> str:
    """A plan document as YAML, the same bytes whichever emitter writes it."""
    import yaml

    # libyaml's emitter is ~5x faster than PyYAML's Python one (8 ms of a one-spec compile)
    # and writes the same text when every string is made of _SAME_TEXT's characters and no
    # key is empty (tests/cli/test_plan_yaml.py compares the two). Other documents go to
    # the Python emitter, which every earlier plan and lock file was written with.
    c_dumper = getattr(yaml, "CSafeDumper", None)
    dumper = c_dumper if c_dumper is not None and _same_text(data) else yaml.SafeDumper
    # Maps and Structs iterate in hash order, which differs between processes: sorting
    # every key is what keeps the YAML byte-identical from run to run.
    return yaml.dump(data, Dumper=dumper, sort_keys=True, allow_unicode=True, width=100).rstrip()


# Characters both emitters write alike: the Basic Multilingual Plane's printable ones as
# PyYAML counts them, less the line and paragraph separators and the byte order mark.
_SAME_TEXT = re.compile("[\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufefe\uff00-\ufffd]*")


def _same_text(value: Any) -> bool:
    if isinstance(value, str):
        return _SAME_TEXT.fullmatch(value) is not None
    if isinstance(value, dict):
        return all(
            isinstance(key, str) and key != "" and _same_text(key) and _same_text(item)
            for key, item in value.items()
        )
    if isinstance(value, list):
        return all(_same_text(item) for item in value)
    return value is None or isinstance(value, bool | int | float)


def explain_text(plan: Any) -> str:
    """Every resolved value with where it came from."""
    from google.protobuf import json_format
    from trainspec.compiler._plan_diff import origin_text
    from trainspec.compiler._tree import whole_numbers

    rows = []
    for entry in plan.provenance:
        value = (
            json.dumps(whole_numbers(json_format.MessageToDict(entry.value)), sort_keys=True)
            if entry.HasField("value")
            else ""
        )
        rows.append((entry.field_path, value, origin_text(entry)))
    width = min(max((len(r[0]) for r in rows), default=0), 60)
    return "\n".join(
        f"{path:<{width}}  {value}\n{'':<{width}}    <- {origin}" for path, value, origin in rows
    )


@click.command("compile")
@click.argument("specs", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["yaml", "json", "textproto"]),
    default="yaml",
    show_default=True,
    help="Output format of the plan.",
)
@defaults_option
@set_option
@click.option("--explain", is_flag=True, help="Print each value with its origin instead.")
@click.option(
    "--preflight",
    is_flag=True,
    help="Also check online (boto3) that S3 data exists in the job's region.",
)
@click.option(
    "--until",
    type=click.Choice(STAGES),
    default="emit",
    show_default=True,
    help="Stop after this pass and print its intermediate form (debugging).",
)
@click.option(
    "--trials",
    type=int,
    default=0,
    metavar="N",
    help="Tuning jobs: preview the grid, the first N random draws or the Hyperband brackets.",
)
@click.option(
    "--max-cost",
    type=float,
    default=None,
    metavar="USD",
    help="Fail when the worst-case cost exceeds this.",
)
@autotune_mode_option()
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    default=None,
    help="Write each plan to DIR/<spec name>.plan.<format> (for several specs).",
)
@click.option(
    "--error-format",
    type=click.Choice(DIAGNOSTIC_FORMATS),
    default="text",
    show_default=True,
    help="How problems are printed: text on stderr; json, github (GitHub Actions "
    "annotations) or sarif (SARIF 2.1.0) on stdout.",
)
@stdin_filename_option
@handle_errors("error_format")
def compile_command(
    specs: tuple[str, ...],
    fmt: str,
    defaults: tuple[str, ...],
    overrides: tuple[str, ...],
    explain: bool,
    preflight: bool,
    until: str,
    trials: int,
    max_cost: float | None,
    autotune_mode: str,
    out: str | None,
    error_format: str,
    stdin_filename: str | None,
) -> None:
    """Compile SPEC(s) into fully resolved plans with the exact SageMaker request.

    Offline unless --preflight. The same inputs always print the same bytes. `-` reads a
    spec from standard input (see --stdin-filename).
    """
    from trainspec.compiler import CompileOptions

    if preflight:  # boto3 logs; the offline compile leaves logging alone (see _cli)
        from trainspec._cli import configure_logging

        configure_logging(click.get_current_context().find_root().params["log_level"])
    options = CompileOptions(
        autotune_mode=autotune_mode, max_cost_usd=max_cost, preflight=preflight
    )
    inputs = spec_inputs(specs, stdin_filename)
    if out is None and len(inputs) == 1:
        _compile_one(inputs[0], fmt, defaults, overrides, explain, until, trials, options)
    else:
        _compile_many(inputs, fmt, defaults, overrides, options, out or ".")


def _compile_many(
    specs: list[SpecInput],
    fmt: str,
    defaults: tuple[str, ...],
    overrides: tuple[str, ...],
    options: CompileOptions,
    out: str,
) -> None:
    import sys
    from pathlib import Path

    from trainspec._errors import EXIT_INVALID, print_diagnostics
    from trainspec.compiler import SpecError, compile_file

    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    failed = 0
    for spec in specs:
        try:
            plan = compile_file(
                spec.path,
                content=spec.content,
                defaults=list(defaults) or None,
                overrides=overrides,
                options=options,
            )
        except SpecError as exc:
            print_diagnostics(exc.diagnostics)
            failed += 1
            continue
        target = folder / f"{Path(spec.path).stem.strip('<>')}.plan.{fmt}"
        target.write_text(plan_text(plan, fmt) + "\n")
        click.echo(f"{spec.path} -> {target}  ({plan.sagemaker_operation}, {plan.digest[:19]})")
    if failed:
        click.echo(f"{failed} of {len(specs)} spec(s) failed to compile", err=True)
        sys.exit(EXIT_INVALID)


def _compile_one(
    spec: SpecInput,
    fmt: str,
    defaults: tuple[str, ...],
    overrides: tuple[str, ...],
    explain: bool,
    until: str,
    trials: int,
    options: CompileOptions,
) -> None:
    from trainspec.compiler import Intermediate, Stage, compile_file

    result = compile_file(
        spec.path,
        content=spec.content,
        defaults=list(defaults) or None,
        overrides=overrides,
        options=options,
        until=Stage[until.upper()],
    )
    if isinstance(result, Intermediate):  # --until stopped before emit
        click.echo(_intermediate_text(result.data))
        return
    if explain:
        click.echo(explain_text(result))
    else:
        click.echo(plan_text(result, fmt))
    from trainspec.compiler import spec_root

    root = spec_root(spec.path)
    for warning in result.warnings:
        click.echo(_warning_text(warning, root), err=True)
    if trials:
        from trainspec.compiler.tuning._trials import format_trials, preview_trials

        job = json.loads(_job_json(result))
        if "tuning" in job:
            click.echo(format_trials(preview_trials(job["tuning"], trials)), err=True)
        else:
            click.echo("--trials applies to tuning jobs only", err=True)


def _job_json(plan: Any) -> str:
    from google.protobuf import json_format

    return json_format.MessageToJson(plan.job, preserving_proto_field_name=True)


def _warning_text(warning: Any, root: str) -> str:
    severity = {1: "error", 2: "warning", 3: "note"}.get(warning.severity, "note")
    where = ""
    if warning.location.path:
        loc = warning.location
        path = _shown_path(loc.path, root)
        where = f"{path}:{loc.line}:{loc.column}: " if loc.line else f"{path}: "
    return f"{where}{severity}[{warning.code}] {warning.field_path}: {warning.message}" + (
        f"\n    hint: {warning.hint}" if warning.hint else ""
    )


def _shown_path(path: str, root: str) -> str:
    """A plan names files from the project root; a terminal user wants them from here,
    as errors (which are not part of a plan) name them."""
    import os

    candidate = os.path.join(root, path)
    if os.path.isabs(path) or not os.path.isfile(candidate):
        return path  # not a file of the project: `--set ...`, a catalog, an absolute path
    relative = os.path.relpath(candidate)
    return candidate if relative.startswith(os.pardir) else relative


def _intermediate_text(data: Any) -> str:
    import dataclasses
    import enum

    import yaml
    from trainspec.compiler._diagnostics import format_path

    def plain(value: Any) -> Any:
        if isinstance(value, enum.Enum):  # before int: OriginKind is an IntEnum
            return value.name
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, dict) or hasattr(value, "items"):
            return {
                (format_path(k) if isinstance(k, tuple) else str(k)): plain(v)
                for k, v in value.items()
            }
        if isinstance(value, list | tuple):
            return [plain(v) for v in value]
        if hasattr(value, "describe"):
            return value.describe()
        if isinstance(value, str | int | float | bool) or value is None:
            return value
        return str(value)

    return yaml.safe_dump(plain(data), sort_keys=False, width=100).rstrip()


@click.command()
@click.argument("which", type=click.Choice(["instances", "models", "frameworks"]))
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True
)
@click.option("--min-gpus", type=int, default=0, help="instances: only with this many GPUs.")
@handle_errors()
def catalog(which: str, fmt: str, min_gpus: int) -> None:
    """List the instance types, pretrained models (JumpStart specs, each with its source
    and version) or framework image versions (from the SageMaker Python SDK)."""
    if which == "frameworks":
        _frameworks(fmt)
        return
    from trainspec.compiler import load_catalog

    loaded = load_catalog()
    if which == "instances":
        rows = [_plain(e) for _, e in sorted(loaded.instances.items())]
        rows = [r for r in rows if r["gpus"] >= min_gpus]
    else:
        rows = [_model_row(m) for _, m in sorted(loaded.models.items())]
    if fmt == "json":
        click.echo(
            json.dumps(
                {"version": loaded.versions.get(which, ""), which: rows},
                indent=2,
                sort_keys=True,
                default=str,
            )
        )
        return
    if which == "instances":
        click.echo(f"{'instance type':<26}{'GPUs':>5} {'GPU':<10}{'vCPUs':>6}{'$/hour':>10}  price")
        for r in rows:
            price_note = "estimate" if r["price_estimated"] else r["price_date"]
            click.echo(
                f"{r['name']:<26}{r['gpus']:>5} {r['gpu_model'] or '-':<10}"
                f"{r['vcpus']:>6}{r['price_per_hour']:>10.3f}  {price_note}"
            )
    else:
        click.echo(
            f"{'model':<56}{'version':<9}{'task':<30}{'batch hp':<12}{'per device':>10}  source"
        )
        for r in rows:
            click.echo(
                f"{r['id']:<56}{r['version']:<9}{r['task'] or '-':<30}"
                f"{r['batch_size_hyperparameter']:<12}{r['per_device_batch_size']:>10}  "
                f"{r['source']}"
            )
    click.echo(f"catalog version {loaded.versions.get(which, '')}", err=True)


def _plain(value: Any) -> Any:
    """A catalog entry as JSON-ready data. Not dataclasses.asdict: it deep-copies each
    value, and the catalog's frozen mappings (MappingProxyType) cannot be copied."""
    import dataclasses
    from collections.abc import Mapping

    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _model_row(model: Any) -> dict[str, Any]:
    return {
        "id": model.id,
        "version": model.version,
        "source": model.source,
        "task": model.task,
        "data_format": model.data_format,
        "framework": model.framework,
        "framework_version": model.framework_version,
        "batch_size_hyperparameter": model.batch_size_hyperparameter,
        "per_device_batch_size": model.per_device_batch_size,
        "default_hyperparameters": dict(model.default_hyperparameters),
        "supported_instance_types": list(model.supported_instance_types),
        "default_instance_type": model.default_instance_type,
        "network_isolation": model.network_isolation,
    }


def _frameworks(fmt: str) -> None:
    from trainspec.compiler.catalog._images import FRAMEWORKS, framework_versions, image_catalog

    source = image_catalog()["source"]
    rows = {name: framework_versions(name) for name in FRAMEWORKS}
    if fmt == "json":
        click.echo(json.dumps({"source": source, "frameworks": rows}, indent=2, sort_keys=True))
        return
    for name, versions in rows.items():
        click.echo(f"{name}: {', '.join(versions)}")
    click.echo(f"from sagemaker {source['version']}'s image_uri_config", err=True)
