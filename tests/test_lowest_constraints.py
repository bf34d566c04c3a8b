"""tools/lowest_constraints.py: the floors .ci/run installs come from pyproject.toml alone."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOOL = ROOT / "tools" / "lowest_constraints.py"
EXTRAS = "trainer,postgres,metrics"


def load_tool():
    spec = importlib.util.spec_from_file_location("lowest_constraints", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_tool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, TOOL, *args], capture_output=True, text=True)


def test_every_runtime_dependency_is_pinned_to_its_floor_and_torch_is_left_out():
    done = run_tool("--extras", EXTRAS, "--without", "torch")
    assert done.returncode == 0, done.stderr
    pins = dict(line.split("==") for line in done.stdout.splitlines() if "==" in line)

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = list(project["dependencies"])
    for extra in EXTRAS.split(","):
        runtime += project["optional-dependencies"][extra]
    for requirement in runtime:
        name = re.match(r"[A-Za-z0-9._\[\]-]+", requirement).group()
        floor = re.search(r">=\s*([^,\s]+)", requirement).group(1)
        if name == "torch":
            assert not any(pin.startswith("torch") for pin in pins)
        else:
            assert pins[name] == floor, requirement


def test_test_tools_come_at_the_versions_constraints_txt_pins():
    done = run_tool("--extras", EXTRAS, "--without", "torch")
    pins = dict(line.split("==") for line in done.stdout.splitlines() if "==" in line)
    constraints = dict(
        line.split("==") for line in (ROOT / "constraints.txt").read_text().splitlines()
        if "==" in line
    )  # fmt: skip
    assert pins["pytest"] == constraints["pytest"]
    assert pins["moto[server]"] == constraints["moto"]
    # a runtime dependency that is a test tool too keeps its floor
    assert pins["prometheus-client"] != constraints["prometheus_client"]


def test_a_dependency_without_a_floor_is_a_clear_error():
    tool = load_tool()
    pyproject = {"project": {"dependencies": ["grpcio>=1.85.1", "click<9"]}}
    with pytest.raises(tool.FloorError, match=r"'click<9' needs exactly one '>=' floor"):
        tool.lowest_requirements(pyproject, {}, [], set())


def test_an_unknown_extra_exits_1_with_the_extras_there_are():
    done = run_tool("--extras", "gpu")
    assert done.returncode == 1
    assert "pyproject.toml has no extra 'gpu'" in done.stderr
    assert "Traceback" not in done.stderr
