"""A job's requirements.txt, installed as SageMaker's toolkit does before the entry point
runs, but into an environment of the job's own: one per distinct file, cached by its hash,
so this machine's environment is never changed and a rerun installs nothing.

The environment sees this runner's packages (as a framework container has torch and the
rest preinstalled), after its own, so a pinned requirement wins.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import site
import subprocess
import sys
import venv
from collections.abc import Callable, Iterator
from pathlib import Path

from trainspec.trainer._container import ContainerError

REQUIREMENTS = "requirements.txt"
_DONE = ".installed"
_TAIL_LINES = 15


def job_python(code_dir: Path, root: Path, echo: Callable[[str], None]) -> str:
    """The interpreter to run the entry point with: this one, or, when the code has a
    requirements.txt, that of its cached environment under `<root>/.envs/`."""
    requirements = code_dir / REQUIREMENTS
    if not requirements.is_file():
        return sys.executable
    digest = hashlib.sha256(requirements.read_bytes()).hexdigest()[:16]
    env_dir = Path(root).resolve() / ".envs" / digest
    python = env_dir / "bin" / "python"
    with _locked(env_dir.with_suffix(".lock")):  # trials of one tuning job share it
        if (env_dir / _DONE).exists():
            return str(python)
        echo(f"[trainspec] installing {REQUIREMENTS} into {env_dir} (once per distinct file)\n")
        _create(env_dir)
        result = subprocess.run(
            [sys.executable, "-m", "pip", "--python", str(python), "install", "-q",
             "--disable-pip-version-check", "-r", str(requirements)],
            cwd=code_dir,  # relative paths in the file are relative to the code, as on SageMaker
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
        )  # fmt: skip
        if result.returncode != 0:
            tail = (result.stdout + result.stderr).strip().splitlines()[-_TAIL_LINES:]
            raise ContainerError(
                f"installing {REQUIREMENTS} failed (pip exited with {result.returncode}):\n"
                + "\n".join(tail)
            )
        (env_dir / _DONE).write_text(digest + "\n")
    return str(python)


def _create(env_dir: Path) -> None:
    venv.EnvBuilder(clear=True, with_pip=False, symlinks=True).create(env_dir)
    # This runner's packages, behind the environment's own (a .pth appends to sys.path).
    inner = next((env_dir / "lib").glob("python*/site-packages"))
    outer = [*site.getsitepackages(), site.getusersitepackages()]
    (inner / "_trainspec_runner.pth").write_text(
        "".join(f"{path}\n" for path in outer if os.path.isdir(path))
    )


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
