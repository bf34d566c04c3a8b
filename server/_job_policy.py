"""What JobService lets a caller do: which backends, which files, which roles and spend.

A caller of JobService makes this server run code (local backend) or spend money with its
AWS credentials (SageMaker backend), so nothing is allowed that the operator did not
switch on: each backend is opt-in, every local path a job uses must lie under the files
root, and SageMaker jobs can be held to listed roles, instance types and a worst-case cost.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from trainspec.compiler.check._local_files import NOWHERE, LocalFiles


@dataclass(frozen=True)
class JobPolicy:
    """`backends` enabled; `files` the local paths jobs may use; SageMaker's limits.

    An empty `allowed_roles` or `allowed_instance_types` allows any; `max_cost_usd` None
    sets no budget of the server's own (a request may still set a lower one).
    """

    backends: frozenset[str] = frozenset()
    files: LocalFiles = NOWHERE
    allowed_roles: frozenset[str] = frozenset()
    allowed_instance_types: frozenset[str] = frozenset()
    max_cost_usd: float | None = None

    @classmethod
    def of(cls, config: Any) -> JobPolicy:
        """The policy a ServerConfig describes (it checked the values)."""
        return cls(
            backends=frozenset(config.jobs),
            files=LocalFiles.under(config.files_root) if config.files_root else NOWHERE,
            allowed_roles=frozenset(config.allowed_roles),
            allowed_instance_types=frozenset(config.allowed_instance_types),
            max_cost_usd=config.max_job_cost_usd,
        )

    def budget(self, requested: float) -> float:
        """The budget a compile is held to: the lower of the request's and the server's."""
        limits = [v for v in (requested, self.max_cost_usd) if v]
        return min(limits) if limits else 0.0

    def request_problems(self, request: Mapping[str, Any]) -> list[str]:
        """What the SageMaker request asks for that this server does not allow."""
        problems = []
        if self.allowed_roles:
            problems += [
                f"role {role} is not one this server may pass to SageMaker"
                for role in sorted(set(_values(request, "RoleArn")) - self.allowed_roles)
            ]
        if self.allowed_instance_types:
            kinds = set(_values(request, "InstanceType")) - self.allowed_instance_types
            problems += [
                f"instance type {kind} is not one this server may start" for kind in sorted(kinds)
            ]
        return problems


def _values(node: Any, key: str) -> Iterator[str]:
    """Every value of `key` anywhere in a request: a tuning request names its roles and
    instance types in each training job definition and in its resource configs."""
    if isinstance(node, Mapping):
        for name, value in node.items():
            if name == key and isinstance(value, str):
                yield value
            else:
                yield from _values(value, key)
    elif isinstance(node, list):
        for value in node:
            yield from _values(value, key)
