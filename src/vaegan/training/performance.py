"""Speed settings for training: which are on by default on each device, and the helpers that apply them.

No setting changes the experiment: the model computes the same function up to float rounding, Adam the same
update, dropout the same distribution (p rounded to 2^-16), and a CPU run stays bit-for-bit reproducible and
resumable for a fixed seed. No setting lowers precision (bf16 is ~100x slower on CPUs without AMX/AVX512-BF16).

The CPU defaults were measured with benchmarks/throughput.py (reference VAE, batch 128, 2-core AMD EPYC VM
shared with other work, torch 2.13; medians of paired ratios over interleaved rounds; the machine is noisy,
so take +-5%):
                                                                        alone vs   cost of removing
                                                                        eager      it from defaults
  channels_last      NHWC activations and weights: oneDNN's brgemm convs  1.04-1.17x  0.92x          on
  fast_dropout       FastDropout: ATen's CPU bernoulli_ is serial (its     1.13-1.22x  0.81x          on
                     MKL path is Intel-only) and took ~25% of a step                        (off on Intel+MKL)
  reuse_host_memory  glibc keeps freed memory: 75-95k page faults per      1.01-1.17x  0.82x          on (Linux)
                     step become 0
  gemm_weight_grad   wide convs' weight gradient as im2col + one GEMM      0.94x       0.85-0.92x     on
                     (gemm_conv.py; oneDNN's AVX2 dW kernels were the slowest part of a step); it needs
                     channels_last: 6 paired A/B runs gave 1.09-1.18x when added to the other defaults
  fused_adam         one kernel for the Adam update (11 ms vs 23 ms/step)  ~1.0x       1.00x          on
  compile            torch.compile(forward + loss): ~30 s to compile       ~1.0x       +0-2% if added off
                     (~6 s with a warm cache), recompiles per batch shape
  num_threads        torch's default (one per physical core); 1 thread:    0.61x                      None
  all defaults: 1.24-1.44x eager before gemm_weight_grad (1.44x over 20 paired rounds), 1.38x with it in
  one 4-round comparison (session 4; its rounds spread +-10%).
Tried and dropped (no gain measured): drawing the dropout words from two generators in two threads (2x faster
alone, 1.00x in a step), OMP_WAIT_POLICY/GOMP_SPINCOUNT, ConvTranspose2d forward as GEMM + col2im, sub-pixel
or stride-1 rewrites of the transposed convs, transparent huge pages for tensors (THP_MEM_ALLOC_ENABLE=1: 96 vs
99 images/s over 5 paired processes), torch.compile with nn.Dropout so that Inductor fuses BatchNorm, ReLU and
its own dropout RNG (0.73x), the dW GEMM in batch chunks that stay in L3 (-10 ms for the 128 -> 64 ConvT only),
and input and weight gradients computed concurrently in two 1-thread halves (conv passes already run 1.84-1.97x
faster on 2 threads than on 1, so there is no idle core to fill).

On CUDA, channels_last and fused Adam are the standard wins; bernoulli_ is already fast there. MPS gets the
plain eager path. oneDNN (torch.backends.mkldnn) must stay on: without it a CPU step is 2-4x slower.

Usage (process settings once; build the optimiser after `apply_speed_settings`):

    settings = speed_defaults(device)
    configure_process(settings)
    model = apply_speed_settings(build_model(cfg), settings).to(device)
    optimizer = build_adam(model.parameters(), lr, wd, betas, fused=settings.fused_adam)
    step = TrainStep(model, optimizer, cfg.loss, speed=settings)
"""

from __future__ import annotations

import ctypes
import platform
import sys
from dataclasses import asdict, dataclass, fields

import torch
from torch import nn

from vaegan.training.fast_dropout import use_fast_dropout
from vaegan.training.gemm_conv import use_gemm_weight_grad


@dataclass(frozen=True)
class SpeedSettings:
    """How to run the training step fast. All off is plain eager PyTorch."""

    channels_last: bool = False  # model weights and input batches in NHWC memory format
    fused_adam: bool = False  # Adam(fused=True): one kernel for the whole update
    fast_dropout: bool = False  # nn.Dropout -> FastDropout (same distribution, cheaper RNG on CPU)
    compile: bool = False  # torch.compile the forward pass + loss inside TrainStep
    gemm_weight_grad: bool = False  # wide convs compute dW as im2col + one GEMM (see gemm_conv.py)
    reuse_host_memory: bool = False  # glibc malloc keeps freed blocks instead of unmapping them (process-wide)
    num_threads: int | None = None  # intra-op threads; None keeps torch's default (one per physical core)

    def describe(self) -> str:
        """One line for logs, e.g. 'channels_last fused_adam fast_dropout' ('eager' when all are off)."""
        on = [f.name for f in fields(self) if f.name != "num_threads" and getattr(self, f.name)]
        if self.num_threads is not None:
            on.append(f"num_threads={self.num_threads}")
        return " ".join(on) or "eager"

    def to_dict(self) -> dict:
        return asdict(self)


def _torch_at_least(major: int, minor: int) -> bool:
    version = tuple(int(part) for part in torch.__version__.split("+")[0].split(".")[:2])
    return version >= (major, minor)


def _mkl_bernoulli() -> bool:
    """Whether ATen's CPU bernoulli_ takes its parallel MKL path (only on Intel CPUs, in builds with MKL)."""
    if not torch.backends.mkl.is_available():
        return False
    try:
        with open("/proc/cpuinfo") as f:
            return any(line.startswith("vendor_id") and "GenuineIntel" in line for line in f)
    except OSError:  # not Linux: assume an Intel Mac would have it
        return platform.machine().lower() in ("x86_64", "amd64") and "intel" in platform.processor().lower()


def speed_defaults(device: torch.device | str) -> SpeedSettings:
    """The measured-best settings for a device type (see the module docstring for the numbers)."""
    kind = torch.device(device).type
    if kind == "cpu":
        return SpeedSettings(channels_last=True, fused_adam=_torch_at_least(2, 4),
                             fast_dropout=not _mkl_bernoulli(), gemm_weight_grad=True,
                             reuse_host_memory=sys.platform.startswith("linux"))
    if kind == "cuda":
        return SpeedSettings(channels_last=True, fused_adam=True)
    return SpeedSettings()  # mps and anything else: plain eager


def configure_process(settings: SpeedSettings) -> None:
    """Apply the process-wide settings: intra-op threads and host-memory reuse. Call once, before training."""
    if settings.num_threads is not None and settings.num_threads != torch.get_num_threads():
        torch.set_num_threads(settings.num_threads)
    if settings.reuse_host_memory:
        set_host_memory_reuse(True)


# mallopt(3) parameters of glibc
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4
_GLIBC_DEFAULT_TRIM_THRESHOLD, _GLIBC_DEFAULT_MMAP_MAX = 128 * 1024, 65536


def set_host_memory_reuse(enabled: bool) -> bool:
    """Make glibc's malloc keep freed memory for reuse (True) or restore its defaults (False).

    PyTorch's CPU allocator has no cache: every activation is a fresh malloc, and glibc serves large blocks
    (above a threshold that starts at 128 KiB and adapts up to 32 MiB) with mmap and unmaps them on free, so
    each training step page-faults its working set in again (75-95k minor faults, ~300-370 MB, per step of the
    reference VAE at batch 128). With mmap off and the trim threshold at its maximum, freed blocks stay in the
    heap and the next step reuses them: no faults. The price is that the process keeps its peak memory until it
    exits. Returns False where glibc is not available (macOS, Windows, musl), where this does nothing.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    if enabled:
        return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))
    done = bool(mallopt(_M_MMAP_MAX, _GLIBC_DEFAULT_MMAP_MAX)) and bool(
        mallopt(_M_TRIM_THRESHOLD, _GLIBC_DEFAULT_TRIM_THRESHOLD))
    libc.malloc_trim(0)
    return done


def apply_speed_settings(model: nn.Module, settings: SpeedSettings) -> nn.Module:
    """Apply the model-side settings in place and return the model (state_dict keys and values unchanged).

    Call it before building the optimiser. `compile` is applied by TrainStep, threads by
    `configure_process`.
    """
    if settings.fast_dropout:
        use_fast_dropout(model)
    if settings.gemm_weight_grad:
        use_gemm_weight_grad(model)
    if settings.channels_last:
        model.to(memory_format=torch.channels_last)
    return model


def to_input_layout(x: torch.Tensor, settings: SpeedSettings) -> torch.Tensor:
    """A batch in the memory format the model expects (a no-op when it already is)."""
    if settings.channels_last and x.dim() == 4:
        return x.contiguous(memory_format=torch.channels_last)
    return x


def align_optimizer_state(optimizer: torch.optim.Optimizer) -> None:
    """Give every per-parameter state tensor (Adam's exp_avg, ...) its parameter's memory layout.

    Needed after loading a state saved with another layout (e.g. a checkpoint from a run without
    channels_last): fused Adam on CPU walks param, grad and state by raw offset, so mismatched strides silently
    pair the wrong elements, and even the unfused kernels round differently on strided inputs, which breaks
    bit-exact resume. `build_adam` registers this as a load_state_dict hook.
    """
    for group in optimizer.param_groups:
        for p in group["params"]:
            state = optimizer.state.get(p)
            if not state:
                continue
            for key, value in state.items():
                if (torch.is_tensor(value) and value.shape == p.shape and value.dim() > 1
                        and value.stride() != p.stride()):
                    state[key] = torch.empty_like(p, dtype=value.dtype).copy_(value)
