"""Fine-tuning data checks: what a pretrained model's local data channel holds, and
whether one step's batch fits in it.

Text tasks need `data.csv` with an integer label in column 1 and text in column 2, no
header; vision tasks need one folder per class holding .jpg/.jpeg/.png images.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from trainspec.compiler._diagnostics import (
    Diagnostic,
    FieldPath,
    Location,
    Severity,
    format_path,
)
from trainspec.compiler._infer import Inferred, is_local
from trainspec.compiler.check._local_files import EVERYWHERE, LocalFiles

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
Locate = Callable[[FieldPath], Location | None]
# Reports one problem of a data folder: (code, message, hint).
Problem = Callable[..., None]


def inspect_local_data(
    inferred: Inferred, locate: Locate, local_files: LocalFiles = EVERYWHERE
) -> tuple[list[dict[str, Any]], list[Diagnostic]]:
    """Reports for each local channel of a pretrained model, and the problems found.

    Only channels `local_files` may read are opened (the check pass notes the others)."""
    model = inferred.pretrained
    if model is None:
        return [], []
    reports: list[dict[str, Any]] = []
    problems: list[Diagnostic] = []
    base = inferred.resolved.training_path
    for channel, spec in sorted(inferred.training.get("data", {}).items()):
        uri = spec.get("uri", "")
        if not is_local(uri) or not local_files.readable(uri) or not Path(uri).exists():
            continue  # S3 data is checked with --preflight; a missing path by check_training
        path = base + ("data", channel, "uri")

        def problem(code: str, message: str, hint: str = "", *, _path: FieldPath = path) -> None:
            problems.append(Diagnostic(code, format_path(_path), message, hint, locate(_path)))

        if model.data_format == "csv-label-text":
            report = _inspect_csv(Path(uri), problem)
        elif model.data_format == "csv-label-text-pair":
            report = _inspect_csv(Path(uri), problem, texts=2)
        elif model.data_format == "image-folders":
            report = _inspect_images(Path(uri), problem)
        else:
            problems.append(
                Diagnostic(
                    "data.format_not_checked",
                    format_path(path),
                    f"the data format of {model.task or 'this model'}'s training script is "
                    "not known to trainspec: the local data is not checked",
                    f"JumpStart model {model.id} reads channel `training` as its script expects",
                    locate(path),
                    severity=Severity.NOTE,
                )
            )
            continue
        if report is not None:
            reports.append({"channel": channel, "path": uri, **report})
    problems.extend(_batch_beyond_data(inferred, reports, locate))
    return reports, problems


def _batch_beyond_data(
    inferred: Inferred, reports: list[dict[str, Any]], locate: Locate
) -> list[Diagnostic]:
    """A warning when one step's batch over the cluster is more than the train channel
    holds: every process then sees fewer samples than its batch, and a loader that drops
    incomplete batches takes no step at all."""
    batch = inferred.batch_sizes
    train = next((r for r in reports if r["channel"] in ("train", "training")), None)
    if batch is None or train is None or batch.global_ <= train["samples"]:
        return []
    base = inferred.resolved.training_path
    given = "per_device_batch_size" in inferred.training
    path = base + (
        ("per_device_batch_size",) if given else ("hyperparameters", batch.hyperparameter)
    )
    devices = max(batch.global_ // max(batch.per_device, 1), 1)
    fits = train["samples"] // devices
    return [
        Diagnostic(
            "batch.larger_than_data",
            format_path(path),
            f"one step's batch over the cluster ({batch.global_}) is more than the "
            f"{train['samples']} samples in data.train",
            hint=(
                f"at most {fits} per device fits one step on {devices} devices"
                if fits
                else f"data.train has fewer samples than the job's {devices} devices"
            ),
            location=locate(path),
            value=batch.global_,
            severity=Severity.WARNING,
        )
    ]


def _inspect_csv(folder: Path, problem: Problem, texts: int = 1) -> Mapping[str, Any] | None:
    """data.csv: an integer label, then `texts` text columns (2: a sentence pair)."""
    data = folder / "data.csv" if folder.is_dir() else folder
    shape = "integer label, then text" if texts == 1 else "integer label, sentence 1, sentence 2"
    if not data.is_file():
        problem(
            "data.csv_missing",
            f"{folder} has no data.csv",
            f"the training data is data.csv: {shape}, no header",
        )
        return None
    counts: Counter[str] = Counter()
    rows = 0
    with data.open(newline="", encoding="utf-8", errors="replace") as handle:
        for line_number, row in enumerate(csv.reader(handle), start=1):
            if not row:
                continue
            rows += 1
            label = row[0].strip()
            texts_ok = len(row) > texts and all(t.strip() for t in row[1 : texts + 1])
            if not label.lstrip("-").isdigit() or not texts_ok:
                hint = (
                    "the first row looks like a header: remove it"
                    if line_number == 1
                    else f"each row is: {shape}"
                )
                problem(
                    "data.csv_bad_row",
                    f"{data}:{line_number}: expected {shape}, got {row[: texts + 1]!r}",
                    hint,
                )
                return None
            counts[label] += 1
    if rows == 0:
        problem("data.csv_empty", f"{data} has no rows")
        return None
    return {
        "format": "csv-label-text",
        "samples": rows,
        "class_counts": dict(sorted(counts.items())),
    }


def _inspect_images(folder: Path, problem: Problem) -> Mapping[str, Any] | None:
    if not folder.is_dir():
        problem(
            "data.image_folder_missing",
            f"{folder} is not a folder",
            "image classification data is one folder per class",
        )
        return None
    counts: dict[str, int] = {}
    ok = True
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue
        if not entry.is_dir():
            problem(
                "data.stray_file",
                f"{entry} is a file; only class folders belong here",
                "move it into a class folder or remove it",
            )
            ok = False
            continue
        images = 0
        for item in sorted(entry.iterdir()):
            if item.name.startswith("."):
                continue
            if item.is_file() and item.suffix.lower() in IMAGE_SUFFIXES:
                images += 1
            else:
                problem(
                    "data.stray_file",
                    f"{item} is not a .jpg, .jpeg or .png image",
                    "remove it or convert it",
                )
                ok = False
        if images == 0:
            problem("data.empty_class", f"class folder {entry} holds no images")
            ok = False
        counts[entry.name] = images
    if not counts:
        problem("data.no_classes", f"{folder} holds no class folders")
        return None
    if not ok:
        return None
    return {"format": "image-folders", "samples": sum(counts.values()), "class_counts": counts}
