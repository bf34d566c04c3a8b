"""The emit pass cannot reject a spec: whatever lowers to a request emits to a Plan.

`trainspec validate` stops after the lowering (it never prints a plan), so it agrees with
`compile` only while this holds. Emit copies the validated tree (types and integer bounds
already checked against the same field model), the botocore-checked request, the
provenance and the warnings into the Plan; checked here over every example and the
agreement corpus, with each autotune mode.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from trainspec.compiler import CompileOptions, SpecError, Stage, compile_file

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(__file__).parent / "data"
SPECS = sorted(
    p
    for p in [*(ROOT / "examples").rglob("*.yaml"), *(DATA / "agreement").iterdir()]
    if p.suffix in (".yaml", ".json")
    and p.name != "trainspec.defaults.yaml"
    and "node_modules" not in p.parts
)
MODES = ("explicit", "native")


def test_the_corpus_has_specs_that_lower_and_specs_that_do_not():
    lowered = [spec for spec in SPECS if _lowers(spec, CompileOptions())]
    assert len(lowered) >= 10
    assert len(SPECS) - len(lowered) >= 10


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("spec", SPECS, ids=[str(p.relative_to(ROOT)) for p in SPECS])
def test_a_spec_that_lowers_emits_a_plan(spec, mode):
    options = CompileOptions(autotune_mode=mode)
    if not _lowers(spec, options):
        with pytest.raises(SpecError):  # and compile fails as validate does
            compile_file(spec, options=options)
        return
    plan = compile_file(spec, options=options)
    assert plan.digest.startswith("sha256:")
    assert plan.sagemaker_operation in ("CreateTrainingJob", "CreateHyperParameterTuningJob")


def _lowers(spec: Path, options: CompileOptions) -> bool:
    try:
        compile_file(spec, options=options, until=Stage.LOWER)
    except SpecError:
        return False
    return True
