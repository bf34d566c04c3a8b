"""model.tar.gz written atomically: a temp file beside the target, fsync, then rename."""

from __future__ import annotations

import contextlib
import errno
import os
import tarfile
import tempfile
from pathlib import Path


class ArtifactError(Exception):
    """The artifact could not be written; the message says why and what to do."""


def _explain(exc: OSError, dest: Path) -> str:
    if exc.errno == errno.ENOSPC:
        return f"no space left on the device holding {dest.parent} while writing {dest.name}"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"cannot write {dest}: permission denied (choose a writable --root)"
    return f"cannot write {dest}: {exc.strerror or exc}"


def pack_model(model_dir: Path, dest: Path) -> Path:
    """Pack the contents of `model_dir` into `dest` (a gzipped tar); return `dest`.

    Either the whole archive lands at `dest` or nothing does: a failure removes the
    temporary file and leaves any earlier `dest` untouched.
    """
    dest = Path(dest)
    _refuse_outside_links(Path(model_dir))
    fd, temp_name = -1, ""
    try:
        fd, temp_name = tempfile.mkstemp(prefix=".model.", suffix=".tmp", dir=dest.parent)
        # mkstemp makes the file 0600; an artifact gets the mode of any new file here.
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as raw:
            fd = -1  # owned by `raw` now
            # Links are stored as what they point to: SageMaker uploads files, and a link
            # in an archive would point into the machine that unpacks it.
            with tarfile.open(fileobj=raw, mode="w:gz", dereference=True) as tar:
                for entry in sorted(Path(model_dir).iterdir()):
                    tar.add(entry, arcname=entry.name)
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(temp_name, dest)
        temp_name = ""
        _fsync_dir(dest.parent)
    except OSError as exc:
        raise ArtifactError(_explain(exc, dest)) from None
    finally:
        if fd != -1:
            os.close(fd)
        if temp_name:
            with contextlib.suppress(OSError):
                os.unlink(temp_name)
    return dest


def _refuse_outside_links(model_dir: Path) -> None:
    """ArtifactError for a link in `model_dir` that resolves outside it (or nowhere)."""
    root = model_dir.resolve()
    for path in sorted(model_dir.rglob("*")):
        if not path.is_symlink():
            continue
        target = path.resolve()
        if not target.exists() or not target.is_relative_to(root):
            raise ArtifactError(
                f"{path.relative_to(model_dir)} in the model folder links to {target}, "
                "outside it: copy what the model needs into the folder instead"
            )


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync_dir(folder: Path) -> None:
    # The rename is durable only once the directory entry is on disk.
    try:
        dir_fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)
