"""Fixtures shared by test folders: moto's server on loopback for AWS calls; `--no-torch`."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from moto.server import ThreadedMotoServer

# the test modules --no-torch left out, for the summary
LEFT_OUT = pytest.StashKey[list[str]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--no-torch",
        action="store_true",
        help="leave out the tests that need torch: those marked torch and the modules that "
        "import it at the top (the lowest-versions job in .ci/run installs no torch)",
    )


def imports_torch(module: Path) -> bool:
    """Whether a test module imports torch at its top level (collecting it needs torch)."""
    names = []
    for node in ast.parse(module.read_bytes()).body:
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
    return any(name.split(".")[0] == "torch" for name in names)


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    if (
        config.getoption("--no-torch")
        and collection_path.suffix == ".py"
        and collection_path.name.startswith("test_")
        and imports_torch(collection_path)
    ):
        config.stash.setdefault(LEFT_OUT, []).append(collection_path.name)
        return True
    return None  # let the other rules decide


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not config.getoption("--no-torch"):
        return
    needs_torch = [item for item in items if item.get_closest_marker("torch")]
    if needs_torch:
        config.hook.pytest_deselected(items=needs_torch)
        items[:] = [item for item in items if not item.get_closest_marker("torch")]


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    if config.getoption("--no-torch"):
        modules = config.stash.get(LEFT_OUT, [])
        terminalreporter.write_line(
            f"--no-torch: left out {len(modules)} modules that import torch "
            f"({', '.join(sorted(modules))}) and the tests marked torch (deselected)"
        )


@pytest.fixture(scope="module")
def moto_url():
    """A moto server on a free loopback port, one per test module (its state included)."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def clean_aws_env(monkeypatch, tmp_path):
    """No AWS settings from this machine: no AWS_* variables, config or credentials files,
    or instance metadata; the region us-east-1."""
    import os

    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")


@pytest.fixture
def fake_aws_credentials(clean_aws_env, monkeypatch):
    """clean_aws_env with moto's test credentials."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
