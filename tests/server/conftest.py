"""Fixtures for the gRPC server tests: real servers on free loopback ports, real channels."""

from __future__ import annotations

import datetime
import ipaddress
import json
import pathlib
import subprocess
import sys
import threading
from collections.abc import Iterator

import grpc
import pytest
from trainspec.server import RunningServer, ServerConfig, make_server
from trainspec.v1 import compiler_service_pb2 as pb
from trainspec.v1 import compiler_service_pb2_grpc as pb_grpc

DATA = pathlib.Path(__file__).parent / "data"


def _source(name: str, content: str | None = None) -> pb.SourceFile:
    if content is None:
        content = (DATA / name).read_text()
    return pb.SourceFile(path=name, content=content)


@pytest.fixture(scope="session")
def source():
    """`source(name, content=None)`: a SourceFile from tests/server/data or with content."""
    return _source


@pytest.fixture
def start_server() -> Iterator:
    """Starts servers with ServerConfig fields; stops them after the test."""
    started: list[RunningServer] = []

    def start(servicer=None, **config) -> RunningServer:
        config.setdefault("port", 0)
        config.setdefault("workers", 4)
        running = make_server(ServerConfig(**config), servicer=servicer).start()
        started.append(running)
        return running

    yield start
    for running in started:
        running.stop(0)


@pytest.fixture
def serve_process() -> Iterator:
    """`start(*args, **popen)`: `trainspec serve --port 0 ARGS` as a real process.

    Returns the process, its port and its log (a list that keeps growing: a thread reads
    stderr, parsing JSON lines, so the server never blocks on a full pipe; other lines
    become {"event": "text"}). Processes still running after the test are killed.
    """
    started: list[subprocess.Popen] = []

    def start(*args: str, **popen) -> tuple[subprocess.Popen, int, list[dict]]:
        process = subprocess.Popen(
            [sys.executable, "-m", "trainspec", "serve", "--port", "0", *args],
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
            **popen,
        )
        started.append(process)
        log: list[dict] = []
        listening = threading.Event()

        def read() -> None:
            with process.stderr:
                for line in process.stderr:
                    try:
                        log.append(json.loads(line))
                    except ValueError:
                        log.append({"event": "text", "text": line})
                    if log[-1].get("event") == "listening":
                        listening.set()

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        if not listening.wait(60):
            process.kill()
            process.wait()
            pytest.fail(f"the server did not start: {log}")
        process.reader = reader
        port = next(e["port"] for e in log if e.get("event") == "listening")
        return process, port, log

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    running = make_server(ServerConfig(port=0, workers=4)).start()
    yield running
    running.stop(0)


@pytest.fixture(scope="module")
def channel(server) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as chan:
        yield chan


@pytest.fixture(scope="module")
def stub(channel) -> pb_grpc.CompilerServiceStub:
    return pb_grpc.CompilerServiceStub(channel)


def _pem_key(key) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _certificate(subject: str, key, issuer_name, issuer_key, *, ca: bool, server: bool):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_name or name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        ).add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    elif not ca:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
    return builder.sign(issuer_key or key, hashes.SHA256())


@pytest.fixture(scope="session")
def pki(tmp_path_factory) -> dict[str, bytes]:
    """A throwaway CA with a server and a client certificate, made at test time (PEM)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    def key():
        return ec.generate_private_key(ec.SECP256R1())

    ca_key, server_key, client_key, other_key = key(), key(), key(), key()
    ca = _certificate("trainspec test CA", ca_key, None, None, ca=True, server=False)
    other_ca = _certificate("another CA", other_key, None, None, ca=True, server=False)
    server_cert = _certificate("localhost", server_key, ca.subject, ca_key, ca=False, server=True)
    client_cert = _certificate("client", client_key, ca.subject, ca_key, ca=False, server=False)
    pem = serialization.Encoding.PEM
    out = {
        "ca": ca.public_bytes(pem),
        "other_ca": other_ca.public_bytes(pem),
        "server_cert": server_cert.public_bytes(pem),
        "server_key": _pem_key(server_key),
        "client_cert": client_cert.public_bytes(pem),
        "client_key": _pem_key(client_key),
    }
    folder = tmp_path_factory.mktemp("pki")
    for name, content in out.items():
        (folder / f"{name}.pem").write_bytes(content)
    out["folder"] = str(folder).encode()
    return out
