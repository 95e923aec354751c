"""Dropout with a cheaper random mask for CPUs, drawn from two random streams at once."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import torch
from torch import nn

PARALLEL_MIN_WORDS = 1 << 16  # below this a helper thread's hand-off costs more than it saves
_helper: ThreadPoolExecutor | None = None


def _fill(words: torch.Tensor, seed: int) -> torch.Tensor:
    return words.random_(-2**63, None, generator=torch.Generator().manual_seed(seed))


@torch.compiler.disable  # generators and a helper thread: runs eagerly under torch.compile (no trace warning)
def random_words(n: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """n uniform 64-bit integers; on CPU the two halves come from two generators, filled concurrently.

    ATen's CPU `random_` is a serial loop (~7 ns a word on our AMD machines): the reference VAE's masks took
    ~40 ms of a step on one core while the other waited. The two generators are seeded from the global one,
    so the words are deterministic for a fixed seed and resumable from `torch.get_rng_state()`, and the split
    is the same whatever the thread count (only whether the halves run at once depends on it).
    """
    global _helper
    words = torch.empty(n, dtype=torch.int64, device=device)
    if words.device.type != "cpu":
        return words.random_(-2**63, None)
    first, second = torch.randint(0, 2**63 - 1, (2,)).tolist()
    low, high = words[: n // 2], words[n // 2:]
    if n < PARALLEL_MIN_WORDS or torch.get_num_threads() < 2:
        _fill(low, first), _fill(high, second)
        return words
    if _helper is None:
        _helper = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vaegan-dropout-rng")
    pending = _helper.submit(_fill, high, second)  # random_ releases the GIL
    _fill(low, first)
    pending.result()
    return words


class FastDropout(nn.Dropout):
    """nn.Dropout with a cheaper random mask, for CPUs.

    ATen's CPU `bernoulli_` draws a double per element from the generator, serially (its parallel MKL path is
    taken on Intel CPUs only), which made dropout ~25% of a training step on AMD. This layer keeps an element
    when a 16-bit random integer is >= round(p * 2^16), reading four such integers from each 64-bit draw of
    `random_`; forward + backward of the reference VAE's six dropouts cost ~50 ms per step instead of ~310 ms.
    p is thus rounded to a multiple of 2^-16 (0.3 -> 0.3000031), and kept elements are scaled by
    1 / (1 - rounded p), which keeps the layer unbiased.

    On CPU the random words come from `random_words` (two streams filled at once); elsewhere from the
    device's generator. Either way the masks are deterministic for a fixed seed and resumable from the global
    RNG state. Its random stream differs from nn.Dropout's, so a run with it is reproducible
    but not bit-identical to one without it. State dicts are unchanged (dropout has no state).
    """

    LEVELS = 1 << 16

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        drop_levels = round(self.p * self.LEVELS)
        if drop_levels >= self.LEVELS:
            return x * 0.0
        n = x.numel()
        words = random_words((n + 3) // 4, x.device)
        bits = words.view(torch.int16)[:n]  # uniform on [-2^15, 2^15)
        mask = torch.empty_like(x)  # x's memory layout; filled in memory order
        torch.ge(bits, drop_levels - self.LEVELS // 2, out=mask.as_strided((n,), (1,)))
        mask.mul_(self.LEVELS / (self.LEVELS - drop_levels))  # {0, 1 / (1 - p)}, reused by backward
        return x.mul_(mask) if self.inplace else x * mask


def use_fast_dropout(module: nn.Module) -> None:
    """Replace every nn.Dropout in `module` by a FastDropout of the same p, in place."""
    for name, child in module.named_children():
        if type(child) is nn.Dropout:
            setattr(module, name, FastDropout(child.p, child.inplace))
        else:
            use_fast_dropout(child)
