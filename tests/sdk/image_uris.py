"""`sagemaker.image_uris.retrieve` for a list of cases, with the SDK's own interpreter.

Reads a JSON list of [framework, version, python_version, base_framework_version,
instance_type, region] from the file named first and writes, for each, the image URI or
"error: <message>" to the file named second. `config_for_framework` and botocore's endpoint
resolver re-read their JSON files on every call; both are memoised here (retrieve never
changes what they return) so that the thousands of cases take seconds, not hours.
"""

import functools
import json
import sys

from sagemaker import image_uris, utils


def main() -> None:
    image_uris.config_for_framework = functools.cache(image_uris.config_for_framework)
    utils._botocore_resolver = functools.cache(utils._botocore_resolver)
    with open(sys.argv[1], encoding="utf-8") as f:
        cases = json.load(f)
    results = []
    for framework, version, py, base, instance_type, region in cases:
        try:
            results.append(
                image_uris.retrieve(
                    framework,
                    region=region,
                    version=version,
                    py_version=py or None,
                    instance_type=instance_type,
                    image_scope="training",
                    base_framework_version=base or None,
                )
            )
        except ValueError as error:
            results.append(f"error: {error}")
    with open(sys.argv[2], "w", encoding="utf-8") as f:
        json.dump(results, f)


if __name__ == "__main__":
    main()
