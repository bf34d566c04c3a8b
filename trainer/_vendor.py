"""What a script needs of trainspec inside SageMaker's container, where trainspec is not
installed: the sifting package, vendored into the job's source (the uploaded archive and
a local run's code folder alike), so `import trainspec.trainer.sifting` works there."""

from __future__ import annotations

import importlib.metadata
import importlib.util
from collections.abc import Mapping
from pathlib import Path

SIFTING_ENVIRONMENT_VARIABLE = "TRAINSPEC_SIFTING"


def uses_sifting(environment: Mapping[str, str]) -> bool:
    return SIFTING_ENVIRONMENT_VARIABLE in environment


def sifting_files() -> dict[str, bytes]:
    """Archive path -> content: `trainspec/trainer/sifting/*.py` and two package markers.

    Found without importing the sifting package (which imports torch); it needs only
    torch, which every PyTorch container has."""
    spec = importlib.util.find_spec("trainspec.trainer.sifting")
    assert spec is not None and spec.submodule_search_locations
    folder = Path(next(iter(spec.submodule_search_locations)))
    marker = (
        f'"""trainspec {importlib.metadata.version("trainspec")}: only '
        'trainspec.trainer.sifting, vendored into this job\'s source by trainspec."""\n'
    ).encode()
    files = {"trainspec/__init__.py": marker, "trainspec/trainer/__init__.py": marker}
    for module in sorted(folder.glob("*.py")):
        files[f"trainspec/trainer/sifting/{module.name}"] = module.read_bytes()
    return files


def extra_source_files(source_dir: Path, *, sifting: bool) -> dict[str, bytes]:
    """The files to add to `source_dir`'s upload: the sifting package when the job sifts,
    unless the source brings its own `trainspec` package."""
    if not sifting or (source_dir / "trainspec").exists():
        return {}
    return sifting_files()
