"""Data catalogs (instances, JumpStart models, framework images) and the code reading them."""

from pathlib import Path

_FOLDER = Path(__file__).parent


def data_file(*parts: str) -> Path:
    """A packaged data file of this folder, e.g. data_file("jumpstart", "regions.json").

    A path beside this module rather than importlib.resources: importing that (with the
    tempfile and zipfile modules it pulls in) cost every `trainspec validate` ~6 ms, and
    trainspec is installed as files (a wheel or an editable install), never run zipped.
    """
    return _FOLDER.joinpath(*parts)
