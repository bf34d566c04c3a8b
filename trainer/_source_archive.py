"""A script archive (sourcedir.tar.gz) unpacked into the job's code folder, as the training
toolkit's `download_and_extract` does, but refusing any member that would land outside it."""

from __future__ import annotations

import shutil
import tarfile
import zlib
from pathlib import Path

from trainspec.trainer._container import ContainerError


def unpack_source(archive: Path, code_dir: Path, label: str) -> None:
    """Extract `archive` (a gzipped tar; a folder is copied, as the toolkit does) into
    `code_dir`. Every member is checked (no absolute name, then tarfile's `data` filter)
    before anything is written, so an archive with an absolute path, `..` or a link out
    of the folder is refused whole. `label` names the archive in errors."""
    try:
        if archive.is_dir():
            shutil.copytree(archive, code_dir, dirs_exist_ok=True)
            return
        with tarfile.open(archive, "r:gz") as tar:
            members = tar.getmembers()
            for member in members:
                if member.name.startswith("/"):  # the data filter would strip the `/`
                    raise ContainerError(
                        f"{label} is refused: member {member.name!r} is an absolute path"
                    )
                tarfile.data_filter(member, str(code_dir))
            tar.extractall(code_dir, members=members, filter="data")
    except tarfile.FilterError as exc:
        raise ContainerError(f"{label} is refused: {exc}") from None
    except (tarfile.TarError, EOFError, zlib.error) as exc:
        raise ContainerError(f"{label} is not a gzipped tar archive: {exc}") from None
    except OSError as exc:
        raise ContainerError(
            f"cannot unpack {label} into {code_dir}: {exc.strerror or exc}"
        ) from None
