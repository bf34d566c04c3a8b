"""Which local files a compile may read to check a spec's data, source and entry point.

The CLI checks everything on the user's own machine. A server compiles for callers who
must learn nothing about its disk, so it reads nothing, or only what lies under a root
its operator chose; every path outside is skipped with a note that says no more than
that it was not checked.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from trainspec.compiler._diagnostics import Diagnostic, Location, Severity


@dataclass(frozen=True)
class LocalFiles:
    """A read policy: `root` None reads nothing; "/" reads anything."""

    root: str | None

    @classmethod
    def under(cls, root: str | os.PathLike) -> LocalFiles:
        return cls(os.path.realpath(root))

    def readable(self, path: str) -> bool:
        """Whether `path` (absolute) may be read: it lies under the root, links resolved.

        The lexical test comes first, so a path outside the root costs no system call
        and so reveals nothing, not even through timing, about what exists there.
        """
        if self.root is None or not os.path.isabs(path):
            return False
        if self.root == os.sep:
            return True
        if not _inside(os.path.normpath(path), self.root):
            return False
        return _inside(os.path.realpath(path), self.root)

    def spec_dir(self, label: str) -> str:
        """The folder a request's spec file counts as in: its label's folder under the root.

        The label is never resolved on this machine; without a root it lands under a
        root of nothing, so the plan shows the label's own folder and nothing of the
        server's (no working directory, no home).
        """
        base = self.root or os.sep
        folder = os.path.dirname(label.replace("\\", "/")).lstrip("/")
        return os.path.normpath(os.path.join(base, folder))


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


EVERYWHERE = LocalFiles(os.sep)
NOWHERE = LocalFiles(None)


def not_checked(field_path: str, location: Location | None) -> Diagnostic:
    """The note for a local path this compile may not read (the same whether it exists)."""
    return Diagnostic(
        "local.not_checked",
        field_path,
        "local path not checked: this server reads no files outside its allowed root",
        hint="run `trainspec validate` where the files are, or start the server with "
        "--files-root covering them",
        location=location,
        severity=Severity.NOTE,
    )
