"""Where a training process computes: its device and, under torchrun, its place in the process group."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from snn_toolchain.errors import ToolchainError


def select_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ToolchainError(f"--device {name}: no CUDA GPU is visible to torch; use --device cpu")
    return torch.device(name)


@dataclass
class DistributedContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def wait_for_all(self) -> None:
        """Return when every process of the run has reached this point (at once when there is one)."""
        if self.enabled:
            dist.barrier()


def init_distributed(device: torch.device) -> DistributedContext:
    """Join the torchrun process group when WORLD_SIZE > 1 (gloo on CPU, nccl on CUDA)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistributedContext()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return DistributedContext(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def join_devices(name: str) -> tuple[torch.device, DistributedContext]:
    """This process's device (``--device name``) and its place in the process group; under torchrun
    on CUDA each process takes the GPU of its local rank."""
    device = select_device(name)
    ctx = init_distributed(device)
    if ctx.enabled and device.type == "cuda":
        device = torch.device("cuda", ctx.local_rank)
        torch.cuda.set_device(device)
    return device, ctx
