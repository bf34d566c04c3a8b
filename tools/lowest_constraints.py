"""Write the requirements of the lowest-versions environment: every floor pyproject declares.

Each direct runtime dependency (``[project] dependencies`` and the extras named with
``--extras``) is pinned to its floor, ``name==floor``, read from pyproject.toml, so the floors
are written once and CI installs exactly them (.ci/run's lowest-versions job). The test tools
(the ``dev`` extra) are pinned to their versions in constraints.txt: they are not under test.

    python tools/lowest_constraints.py --extras trainer,postgres,metrics --without torch \
        -o .venv-lowest.txt

A dependency without a ``>=`` floor is an error: a floor that CI cannot install is untested.
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# name[extras] followed by version specifiers (PEP 508, without markers or URLs)
REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*(.*?)\s*$")


class FloorError(Exception):
    """pyproject.toml or constraints.txt says something this script cannot turn into a pin."""


def normalize(name: str) -> str:
    """PEP 503's form of a project name, so 'PyYAML' and 'pyyaml' are one package."""
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_requirement(text: str) -> tuple[str, str, list[str]]:
    """(name, extras, specifiers) of a requirement such as 'moto[server]>=5.0,<6'."""
    if ";" in text or "@" in text:
        raise FloorError(f"{text!r}: environment markers and URLs are not supported here")
    match = REQUIREMENT.match(text)
    if not match:
        raise FloorError(f"{text!r}: not a requirement")
    name, extras, rest = match.groups()
    specifiers = [s.strip() for s in rest.split(",") if s.strip()]
    return name, extras or "", specifiers


def floor_pin(text: str, where: str) -> tuple[str, str]:
    """(normalized name, 'name[extras]==floor') for a requirement with a '>=' floor."""
    name, extras, specifiers = parse_requirement(text)
    floors = [s[2:].strip() for s in specifiers if s.startswith(">=")]
    if len(floors) != 1:
        raise FloorError(f"pyproject.toml {where}: {text!r} needs exactly one '>=' floor")
    return normalize(name), f"{name}{extras}=={floors[0]}"


def read_constraints(path: Path) -> dict[str, str]:
    """{normalized name: version} of a pip constraints file of 'name==version' lines."""
    pins = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name, version = (part.strip() for part in line.partition("==")[::2])
        if not name or not version:
            raise FloorError(f"{path.name}:{number}: {line!r} is not 'name==version'")
        pins[normalize(name)] = version
    return pins


def lowest_requirements(
    pyproject: dict, constraints: dict[str, str], extras: list[str], without: set[str]
) -> list[str]:
    """The pins, floors first, then the test tools at their constraints.txt versions."""
    project = pyproject["project"]
    optional = project.get("optional-dependencies", {})
    groups = [("[project] dependencies", project.get("dependencies", []))]
    for extra in extras:
        if extra not in optional:
            raise FloorError(f"pyproject.toml has no extra {extra!r} (it has {sorted(optional)})")
        groups.append((f"extra {extra!r}", optional[extra]))

    pins: dict[str, str] = {}
    for where, requirements in groups:
        for text in requirements:
            name, pin = floor_pin(text, where)
            if name not in without:
                pins.setdefault(name, pin)
    for text in optional.get("dev", []):
        name, extra_names, _ = parse_requirement(text)
        key = normalize(name)
        if key in pins or key in without:
            continue  # a runtime dependency too: its floor is what is under test
        if key not in constraints:
            raise FloorError(f"constraints.txt does not pin the dev tool {name!r}")
        pins[key] = f"{name}{extra_names}=={constraints[key]}"
    return list(pins.values())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--extras", default="", help="comma-separated extras to floor too")
    parser.add_argument("--without", default="", help="comma-separated packages to leave out")
    parser.add_argument("-o", "--output", type=Path, help="file to write (default: stdout)")
    args = parser.parse_args(argv)
    extras = [e.strip() for e in args.extras.split(",") if e.strip()]
    without = {normalize(w.strip()) for w in args.without.split(",") if w.strip()}
    try:
        pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
        constraints = read_constraints(ROOT / "constraints.txt")
        pins = lowest_requirements(pyproject, constraints, extras, without)
    except (FloorError, tomllib.TOMLDecodeError) as error:
        print(f"lowest_constraints: {error}", file=sys.stderr)
        return 1
    text = (
        "# Generated by tools/lowest_constraints.py from pyproject.toml's floors; do not edit.\n"
        + "".join(f"{pin}\n" for pin in pins)
    )
    if args.output:
        args.output.write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
