"""Fixtures shared by test folders: moto's server on loopback for AWS calls."""

from __future__ import annotations

import pytest
from moto.server import ThreadedMotoServer


@pytest.fixture(scope="module")
def moto_url():
    """A moto server on a free loopback port, one per test module (its state included)."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()
