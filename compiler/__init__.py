"""trainspec.compiler: job specs in, fully resolved and checked plans out.

Pure functions over data; no network (except the opt-in `preflight`), no torch, grpc or
boto3 at import time.
"""

from trainspec.compiler._diagnostics import (
    Diagnostic,
    InternalError,
    Location,
    Severity,
    SpecError,
)
from trainspec.compiler._driver import (
    CompileOptions,
    Intermediate,
    Stage,
    compile_file,
    compile_text,
)
from trainspec.compiler._places import spec_root
from trainspec.compiler._request import compile_request
from trainspec.compiler.catalog._catalog import Catalog, load_catalog
from trainspec.compiler.load._load import STDIN_NAME, LoadedSource, load_file, load_source

__all__ = [
    "STDIN_NAME",
    "Catalog",
    "CompileOptions",
    "Diagnostic",
    "Intermediate",
    "InternalError",
    "LoadedSource",
    "Location",
    "Severity",
    "SpecError",
    "Stage",
    "compile_file",
    "compile_request",
    "compile_text",
    "load_catalog",
    "load_file",
    "load_source",
    "spec_root",
]
