"""One run on several processes (`torchrun --nproc_per_node=N -m vaegan train ...`): data-parallel training.

Why no DDP wrapper: a VAE-GAN step runs G twice, toggles `requires_grad` on D between its two passes and keeps
spectral-norm vectors in D's buffers; wrapping the whole model in DistributedDataParallel breaks on such steps
(buffers broadcast in place during the forward, parameters "marked ready twice"). Instead every rank starts
from the same weights (the same seed builds the same model), and after both backward passes the gradients of
each optimiser are averaged in one flattened all-reduce, so every rank applies the same update. The
non-finite decision is reduced too (all ranks skip together, never one alone), BatchNorm statistics are
averaged after every step (so the ranks stay identical and a resume is exact), and the logged values are
averaged at each flush.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

TIMEOUT = datetime.timedelta(minutes=10)  # a rank that stops answering ends the others after this long


@dataclass(frozen=True)
class Ranks:
    rank: int = 0
    world_size: int = 1

    @property
    def main(self) -> bool:
        """Whether this process writes the run's files and prints (rank 0)."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def join_from_environment(device_type: str) -> Ranks:
    """Join the process group torchrun describes in the environment (WORLD_SIZE, RANK, LOCAL_RANK); one process
    without it. CUDA ranks use NCCL on their own GPU, CPU ranks gloo."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return Ranks()
    if not dist.is_initialized():
        if device_type == "cuda":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl" if device_type == "cuda" else "gloo", timeout=TIMEOUT)
    return Ranks(dist.get_rank(), dist.get_world_size())


def barrier(ranks: Ranks) -> None:
    if ranks.distributed:
        dist.barrier()


def leave(finished: bool = True) -> None:
    """Leave the process group on every exit path. After a normal finish the ranks first wait for each other:
    a rank that tears its connections down while another still holds them can abort the process (gloo)."""
    if dist.is_initialized():
        if finished:
            dist.barrier()
        dist.destroy_process_group()


def average_gradients(optimizers: list[torch.optim.Optimizer], world_size: int) -> None:
    """Average every gradient over the ranks, one flattened all-reduce per optimiser."""
    for optimizer in optimizers:
        grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        if not grads:
            continue
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat /= world_size
        offset = 0
        for grad in grads:
            grad.copy_(flat[offset:offset + grad.numel()].view_as(grad))
            offset += grad.numel()


def any_rank(flag: torch.Tensor) -> None:
    """`flag` (a float scalar) becomes its maximum over the ranks, in place."""
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)


def average(values: torch.Tensor, world_size: int) -> torch.Tensor:
    dist.all_reduce(values)
    return values / world_size


def average_buffers(module: nn.Module, world_size: int) -> None:
    """Make the floating-point buffers (BatchNorm statistics, spectral-norm vectors) their mean over the ranks,
    in one flattened all-reduce."""
    buffers = [b for b in module.buffers() if b.is_floating_point()]
    if buffers:
        flat = average(torch.cat([b.reshape(-1) for b in buffers]), world_size)
        offset = 0
        for buffer in buffers:
            buffer.copy_(flat[offset:offset + buffer.numel()].view_as(buffer))
            offset += buffer.numel()


def gather(value: object, world_size: int) -> list[object]:
    """Every rank's `value` (picklable), in rank order, on every rank."""
    gathered = [None] * world_size
    dist.all_gather_object(gathered, value)
    return gathered
