"""One run on several processes (`torchrun --nproc_per_node=N -m vaegan train ...`): data-parallel training.

Why no DDP wrapper: a VAE-GAN step runs G twice, toggles `requires_grad` on D between its two passes and keeps
spectral-norm vectors in D's buffers; wrapping the whole model in DistributedDataParallel breaks on such steps
(buffers broadcast in place during the forward, parameters "marked ready twice"). Instead every rank starts
from the same weights (the same seed builds the same model), and after both backward passes the gradients of
each optimiser are averaged in one flattened all-reduce, so every rank applies the same update. The
non-finite decision is reduced too (all ranks skip together, never one alone) and BatchNorm statistics are
averaged every step (so the ranks stay identical and a resume is exact), all in that same all-reduce; the
logged values are averaged at each flush.
"""

from __future__ import annotations

import datetime
import os
import signal
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

TIMEOUT = datetime.timedelta(minutes=10)  # a rank that stops answering ends the others after this long
STORE_TIMEOUT = datetime.timedelta(seconds=10)


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

    @classmethod
    def from_environment(cls) -> Ranks:
        """The ranks torchrun announces (RANK, WORLD_SIZE), before any process group is joined."""
        return cls(int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1")))


def join_from_environment(device_type: str) -> Ranks:
    """Join the process group torchrun describes in the environment (WORLD_SIZE, RANK, LOCAL_RANK); one process
    without it. CUDA ranks use NCCL on their own GPU, CPU ranks gloo.

    `torch.distributed.nn` is imported first because its functions take `group=group.WORLD` as a default
    argument, evaluated at import. Imported after the group exists (the first optimiser imports it, through
    torch._dynamo), those defaults keep the group alive after `destroy_process_group`, and with it gloo's worker
    threads: one of them then drops a finished collective's tensors while the interpreter shuts down and aborts
    the rank ("terminate called without an active exception")."""
    if not Ranks.from_environment().distributed:
        return Ranks()
    import torch.distributed.nn  # noqa: F401  before the group exists: see the docstring
    if not dist.is_initialized():
        if device_type == "cuda":  # one GPU per rank, bound up front so NCCL never guesses it
            gpu = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(gpu)
            dist.init_process_group("nccl", timeout=TIMEOUT, device_id=gpu)
        else:
            dist.init_process_group("gloo", timeout=TIMEOUT)
        signal.signal(signal.SIGTERM, _exit_on_sigterm)
    return Ranks(dist.get_rank(), dist.get_world_size())


def _exit_on_sigterm(signum: int, frame: object) -> None:
    """torchrun stops the other ranks with SIGTERM when one fails (or it is stopped itself): as an exception,
    the rank still leaves the process group and releases the run's lock on its way out."""
    raise SystemExit(128 + signum)


def barrier(ranks: Ranks) -> None:
    if ranks.distributed:
        dist.barrier()


def from_main(value: object, ranks: Ranks) -> object:
    """Rank 0's `value` (picklable), on every rank: for decisions only rank 0 can take, such as what its files say."""
    if not ranks.distributed:
        return value
    shared = [value]
    dist.broadcast_object_list(shared, src=0)
    return shared[0]


def leave(error: BaseException | None = None) -> bool:
    """Leave the process group; called on every exit path. Returns whether this rank reports `error`: of the
    ranks that stop on an error only the first does, so a run that fails prints one message, not one per rank.

    After a normal finish the ranks first wait for each other (a rank that tears its connections down while
    another still uses them makes that one fail). A failing rank claims the report before it leaves, so the
    ranks it strands find the claim when their collectives fail."""
    if not dist.is_initialized():
        return True
    first = True
    if error is None:
        dist.barrier()
    else:
        first = _claim_report()
    dist.destroy_process_group()
    return first


def _claim_report() -> bool:
    """Record this rank as the run's first failure in the store torchrun's agent keeps (at MASTER_ADDR:
    MASTER_PORT; it outlives the process group), unless another rank came first."""
    key, rank = f"vaegan/failed/{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}", str(dist.get_rank())
    try:
        store = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), is_master=False,
                              timeout=STORE_TIMEOUT)
        return store.compare_set(key, "", rank).decode() == rank
    except (KeyError, ValueError, RuntimeError):  # no agent's store: every rank reports for itself
        return True


def average_step(optimizers: list[torch.optim.Optimizer], module: nn.Module, found_inf: torch.Tensor,
                 world_size: int) -> None:
    """After both backward passes, in one flattened all-reduce: every gradient and every floating-point buffer
    (BatchNorm statistics saw only this rank's images) becomes its mean over the ranks, and `found_inf` (0 or 1)
    becomes positive wherever it is on any rank, so all ranks skip a step together."""
    grads = [p.grad for optimizer in optimizers for group in optimizer.param_groups for p in group["params"]
             if p.grad is not None]
    tensors = [*grads, *(b for b in module.buffers() if b.is_floating_point()), found_inf]
    flat = torch.cat([t.reshape(-1) for t in tensors])
    dist.all_reduce(flat)
    flat /= world_size
    for tensor, part in zip(tensors, flat.split([t.numel() for t in tensors])):
        tensor.copy_(part.view_as(tensor))
    found_inf.copy_(found_inf > 0)  # 1, not a fraction: fused Adam skips on exactly 1


def average(values: torch.Tensor, world_size: int) -> torch.Tensor:
    dist.all_reduce(values)
    return values / world_size


def total(values: torch.Tensor) -> torch.Tensor:
    """`values` summed over the ranks (in place)."""
    dist.all_reduce(values)
    return values


def gather(value: object, world_size: int) -> list[object]:
    """Every rank's `value` (picklable), in rank order, on every rank."""
    gathered = [None] * world_size
    dist.all_gather_object(gathered, value)
    return gathered
