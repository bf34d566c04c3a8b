"""A download cache of S3 objects under the runner's root, keyed by bucket, key and ETag.

`<root>/.cache/s3/<bucket>/<sha256 of the key>/<ETag>` holds one object version. A file
is there only once it was downloaded whole and checked (its size, and its MD5 where the
ETag is one), because every download goes to a temporary file that is renamed into
place; so a cached file of the listed ETag and size is used without a GET. Cached files
are read-only: jobs get hard links to them, and a job must not change the cache.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

_CHUNK = 1 << 20
# Big downloads say how far they are, at most this often.
PROGRESS_BYTES = 8 << 20
PROGRESS_SECONDS = 2.0
_SAFE_ETAG = re.compile(r"[A-Za-z0-9-]{1,80}")
_MD5_ETAG = re.compile(r"[0-9a-f]{32}")
# SSE-KMS and SSE-C objects have ETags that are not the MD5 of their content.
_OPAQUE_ENCRYPTION = ("aws:kms", "aws:kms:dsse")


@dataclass(frozen=True)
class S3Object:
    """One object version as S3 lists it: the ETag without its quotes."""

    bucket: str
    key: str
    etag: str
    size: int

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


class ObjectChanged(Exception):
    """The object's content did not match what S3 listed (changed meanwhile, or cut off)."""


class S3Cache:
    """The cached objects under `<root>/.cache/s3`."""

    def __init__(self, root: Path) -> None:
        self.dir = Path(root).resolve() / ".cache" / "s3"

    def path(self, obj: S3Object) -> Path:
        """Where `obj` is cached. Keys may hold `..` or `/` runs, so they are hashed; bucket
        names are one safe path component by S3's rules, ETags are checked."""
        etag = obj.etag if _SAFE_ETAG.fullmatch(obj.etag) else _sha256(obj.etag)
        return self.dir / obj.bucket / _sha256(obj.key)[:40] / etag

    def cached(self, obj: S3Object) -> Path | None:
        """The cached file of exactly this version, or None."""
        path = self.path(obj)
        try:
            return path if path.stat().st_size == obj.size else None
        except OSError:
            return None

    def download(
        self, client: Any, obj: S3Object, progress: Callable[[int], None] | None = None
    ) -> Path:
        """GET `obj` (only the version of its ETag) into the cache and return its path.

        Raises ObjectChanged when what arrived is not that version whole; a botocore
        error as it comes. Either way nothing but a checked file is ever left in place.
        """
        path = self.path(obj)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, partial = tempfile.mkstemp(dir=path.parent, prefix=".part-")
        try:
            with os.fdopen(fd, "wb") as out:
                response = client.get_object(
                    Bucket=obj.bucket, Key=obj.key, IfMatch=f'"{obj.etag}"'
                )
                check_md5 = _MD5_ETAG.fullmatch(obj.etag) and not (
                    response.get("ServerSideEncryption") in _OPAQUE_ENCRYPTION
                    or response.get("SSECustomerAlgorithm")
                )
                digest = hashlib.md5(usedforsecurity=False)
                received = 0
                for chunk in response["Body"].iter_chunks(_CHUNK):
                    out.write(chunk)
                    if check_md5:
                        digest.update(chunk)
                    received += len(chunk)
                    if progress is not None:
                        progress(received)
                out.flush()
                os.fsync(out.fileno())
            if received != obj.size:
                raise ObjectChanged(f"{obj.uri}: got {received} bytes, S3 lists {obj.size}")
            if check_md5 and digest.hexdigest() != obj.etag:
                raise ObjectChanged(f"{obj.uri}: content does not match its ETag {obj.etag}")
            os.chmod(partial, 0o444)
            os.replace(partial, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(partial)
            raise
        self._forget_other_versions(path)
        (path.parent / ".uri").write_text(obj.uri + "\n", encoding="utf-8")  # for people
        return path

    def _forget_other_versions(self, kept: Path) -> None:
        # Jobs that use an older version hold their own hard links to it; dot files are
        # the `.uri` note and other runs' downloads in progress.
        for other in kept.parent.iterdir():
            if other != kept and not other.name.startswith("."):
                with contextlib.suppress(OSError):
                    other.unlink()


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


class Progress:
    """Bytes received of one big download, on `stream` (stderr), every few seconds."""

    def __init__(self, obj: S3Object, stream: TextIO) -> None:
        self._obj = obj
        self._stream = stream
        self._last = time.monotonic()

    def __call__(self, received: int) -> None:
        now = time.monotonic()
        if received == self._obj.size or now - self._last >= PROGRESS_SECONDS:
            self._last = now
            self._stream.write(
                f"[trainspec] downloading {self._obj.uri}: {_mib(received)} of "
                f"{_mib(self._obj.size)} MiB\n"
            )
            self._stream.flush()


def _mib(size: int) -> str:
    return f"{size / (1 << 20):.1f}"
