"""Device, generator, RNG-state and process-group helpers shared by the loaders."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

import torch
import torch.distributed as dist

if TYPE_CHECKING:
    from torch.distributed import ProcessGroup


def model_device(model: torch.nn.Module | None) -> torch.device:
    """The device of the model's first parameter (or buffer); CPU for none."""
    if model is None:
        return torch.device("cpu")
    for tensor in model.parameters():
        return tensor.device
    for buffer in model.buffers():
        return buffer.device
    return torch.device("cpu")


def world(process_group: ProcessGroup | None) -> tuple[int, int]:
    """(rank, world size) of the group, or (0, 1) when not distributed."""
    if not (dist.is_available() and dist.is_initialized()):
        return 0, 1
    return dist.get_rank(process_group), dist.get_world_size(process_group)


def make_generator(
    device: torch.device,
    generator: torch.Generator | None,
    seed: int | None,
    process_group: ProcessGroup | None,
) -> torch.Generator:
    """The generator for every random choice of a loader.

    NOTE [same choices on every rank]: under DDP each rank replays the sift decisions of
    all ranks, so all generators must start equal; the seed is broadcast from rank 0.
    Without an explicit seed the seed is torch.initial_seed(), so torch.manual_seed(s)
    makes a run reproducible without consuming the global RNG.
    """
    if generator is not None:
        return generator
    if seed is None:
        seed = torch.initial_seed()
    _, size = world(process_group)
    if size > 1:
        backend_device = device if dist.get_backend(process_group) == "nccl" else "cpu"
        box = torch.tensor([seed % (2**62)], dtype=torch.int64, device=backend_device)
        dist.broadcast(
            box,
            src=dist.get_global_rank(process_group, 0) if process_group else 0,
            group=process_group,
        )
        seed = int(box.item())
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    return gen


def collective_device(device: torch.device, process_group: ProcessGroup | None) -> torch.device:
    """gloo reduces CPU tensors, nccl CUDA tensors."""
    return device if dist.get_backend(process_group) == "nccl" else torch.device("cpu")


def _set_modes(modules: list[torch.nn.Module], modes: list[bool]) -> None:
    for module, training in zip(modules, modes, strict=True):
        # object.__setattr__ skips nn.Module's attribute routing, ~10x faster than
        # Module.train() on small models where it shows in every scored batch.
        object.__setattr__(module, "training", training)


def module_list(model: torch.nn.Module) -> tuple[list[torch.nn.Module], bool]:
    """The model's modules, and whether none of them overrides train()."""
    modules = list(model.modules())
    return modules, all(type(m).train is torch.nn.Module.train for m in modules)


@contextlib.contextmanager
def preserved(
    model: torch.nn.Module,
    device: torch.device,
    modules: tuple[list[torch.nn.Module], bool] | None = None,
) -> Iterator[None]:
    """Put the model in eval mode; restore every module's mode and the RNG states after.

    `modules` is module_list(model), passed by callers that score many batches.
    """
    listed, plain = modules if modules is not None else module_list(model)
    modes = [m.training for m in listed]
    cpu_state = torch.get_rng_state()
    cuda_state = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    # Modules that override train() get the real calls, so their side effects happen.
    if plain:
        _set_modes(listed, [False] * len(listed))
    else:
        model.eval()
    try:
        yield
    finally:
        if plain or not all(modes):
            _set_modes(listed, modes)
        else:
            model.train()
        torch.set_rng_state(cpu_state)
        if cuda_state is not None:
            torch.cuda.set_rng_state(cuda_state, device)
