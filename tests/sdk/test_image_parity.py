"""Proof (b): every framework image the catalog can produce equals the SDK's.

For every framework, version (and alias), Python version, Hugging Face base framework,
processor and region in catalog/framework_images.json, `training_image` must give what
`sagemaker.image_uris.retrieve` of the pinned SDK gives for the same arguments, and
refuse exactly where the SDK raises.
"""

from trainspec.compiler.catalog._images import ImageProblem, image_catalog, training_image

# One instance per processor the catalog lists; p2 and p4d take the SDK's special cases.
INSTANCES = {"gpu": "ml.g5.xlarge", "cpu": "ml.m5.xlarge", "trn": "ml.trn1.2xlarge"}
EXTRA_INSTANCES = ("ml.p2.xlarge", "ml.p4d.24xlarge")
FRAMEWORK_OF = {"pytorch-neuron": "pytorch"}


def _cases() -> list[tuple]:
    catalog = image_catalog()
    cases = []
    for name, config in sorted(catalog["frameworks"].items()):
        framework = FRAMEWORK_OF.get(name, name)
        versions = {**{v: v for v in config["versions"]}, **config.get("version_aliases", {})}
        for version, full in sorted(versions.items()):
            entry = config["versions"][full]
            bases = [""]
            if framework == "huggingface":
                bases = [b for b in entry if b != "version_aliases"]
                bases += list(entry.get("version_aliases", {}))
            for base in bases:
                leaf = entry.get(entry.get("version_aliases", {}).get(base, base), entry)
                pys = (leaf.get("py_versions") if "repository" in leaf else list(leaf)) or [""]
                for py in pys:
                    node = leaf.get(py) or leaf if py else leaf
                    processors = config.get("processors") or node.get("processors") or ["cpu"]
                    instances = [INSTANCES[p] for p in processors if p in INSTANCES]
                    if framework in ("pytorch", "tensorflow") and name == framework:
                        instances += EXTRA_INSTANCES
                    if framework == "huggingface":
                        instances.append(INSTANCES["cpu"])  # refused, as the SDK refuses
                    regions = sorted(catalog["registries"][node["registries"]])
                    for instance in instances:
                        for region in regions:
                            cases.append((framework, version, py, base, instance, region))
    return cases


def test_every_catalog_image_equals_image_uris_retrieve(run_sdk):
    cases = _cases()
    assert len(cases) > 5000  # every version x processor x region, not a sample
    expected = run_sdk("image_uris.py", [list(c) for c in cases])
    mismatches = []
    for case, sdk in zip(cases, expected, strict=True):
        framework, version, py, base, instance, region = case
        ours = training_image(
            framework,
            version,
            region=region,
            instance_type=instance,
            python_version=py,
            base_framework_version=base,
        )
        if isinstance(ours, ImageProblem):
            if not sdk.startswith("error:"):
                mismatches.append((case, f"refused: {ours.message}", sdk))
        elif ours != sdk:
            mismatches.append((case, ours, sdk))
    assert not mismatches, f"{len(mismatches)} of {len(cases)} differ, first: {mismatches[:5]}"
