"""Speed settings for training: which are on by default on each device (`train.speed=auto`), and the helpers
that apply them. `train.speed=eager` turns every one off.

No setting changes the experiment: the model computes the same function up to float rounding, Adam the same
update, dropout the same distribution (p rounded to 2^-16), and a CPU run stays bit-for-bit reproducible and
resumable for a fixed seed. Only `precision=bf16` (autocast of forward and losses; weights and optimiser state
stay fp32) and TF32 round coarser, and neither is a CPU default (bf16 is far slower on CPUs without
AMX/AVX512-BF16).
Each default was measured with benchmarks/throughput.py; docs/performance.md holds the numbers and what was
tried and dropped. The settings a run used are recorded in its checkpoint and summary.json, and a resumed run
keeps them: fast_dropout draws another random stream than nn.Dropout, so switching it mid-run would break
bit-exact resumption.

On CUDA, channels_last and fused Adam are the standard wins; MPS gets the plain eager path. Training applies
them through `vaegan.training.factory.build_training`, the one place that prepares model and optimisers.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass, fields, replace

import torch
from torch import nn

from vaegan.errors import VaeganError
from vaegan.speed.fast_dropout import use_fast_dropout
from vaegan.speed.gemm_conv import use_gemm_weight_grad


@dataclass(frozen=True)
class SpeedSettings:
    """How to run the training step fast. All off is plain eager PyTorch."""

    channels_last: bool = False  # model weights and input batches in NHWC memory format
    fused_adam: bool = False  # Adam(fused=True): one kernel; it also skips a non-finite step without a sync
    fast_dropout: bool = False  # nn.Dropout -> FastDropout (same distribution, cheaper RNG on CPU)
    compile: str = "off"  # torch.compile mode of E, G and D: off, default or reduce-overhead (CUDA graphs)
    gemm_weight_grad: bool = False  # wide convs compute dW as im2col + one GEMM (see gemm_conv.py)
    reuse_host_memory: bool = False  # glibc malloc keeps freed blocks instead of unmapping them (process-wide)
    num_threads: int | None = None  # intra-op threads; None keeps torch's default (one per physical core)
    precision: str = "fp32"  # bf16: autocast of forward and losses
    tf32: bool = False  # TF32 matmuls and convolutions (CUDA; process-wide)
    cudnn_benchmark: bool = False  # cuDNN picks its fastest convolution per shape (CUDA; process-wide)
    cuda_graph: bool = False  # the whole step replayed from a CUDA graph (training/graph.py)

    def describe(self) -> str:
        """One line for logs, e.g. 'channels_last fused_adam fast_dropout' ('eager' when all are off)."""
        plain = SpeedSettings()
        on = [f.name if isinstance(getattr(self, f.name), bool) else f"{f.name}={getattr(self, f.name)}"
              for f in fields(self) if getattr(self, f.name) != getattr(plain, f.name)]
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
    """The measured-best settings for a device type (docs/performance.md has the numbers)."""
    kind = torch.device(device).type
    if kind == "cpu":
        return SpeedSettings(channels_last=True, fused_adam=_torch_at_least(2, 4),
                             fast_dropout=not _mkl_bernoulli(), gemm_weight_grad=True,
                             reuse_host_memory=sys.platform.startswith("linux"))
    if kind == "cuda":  # eager fp32 + TF32: bf16 and compile were slower on an H200 (docs/performance.md); the
        # whole-step CUDA graph stays off until benchmarks/gpu_check.py has measured it
        return SpeedSettings(channels_last=True, fused_adam=True, tf32=True, cudnn_benchmark=True)
    return SpeedSettings()  # mps and anything else: plain eager


def grouped_member_layers(device: torch.device | str) -> bool:
    """How a fused model (vaegan.training.fused) runs its members' layers: on a GPU as one grouped kernel per
    layer (one batch of 32x32 images leaves it idle, K batches fill it); on a CPU, which one batch keeps busy,
    member by member with the run's own kernels (oneDNN's grouped convolution backward was 1.3x slower than two
    separate runs of the reference VAE-GAN, docs/performance.md)."""
    return torch.device(device).type != "cpu"


def speed_request(train) -> dict:
    """What a run's config asks of the speed settings (`train.speed` and the keys that override single ones)."""
    return {"speed": train.speed, "precision": train.precision, "compile": train.compile, "tf32": train.tf32,
            "threads": train.threads, "graph": train.graph}


def busy_cores(seconds: float = 0.2) -> float | None:
    """How many cores other work keeps busy right now (from /proc/stat over `seconds`); None off Linux."""
    def sample() -> tuple[int, int]:
        with open("/proc/stat") as f:
            numbers = [int(v) for v in f.readline().split()[1:]]
        return sum(numbers), numbers[3] + numbers[4]  # all jiffies, idle + iowait
    try:
        total, idle = sample()
        time.sleep(seconds)
        total2, idle2 = sample()
    except (OSError, ValueError, IndexError):
        return None
    cores = os.cpu_count() or 1
    return cores * (1 - (idle2 - idle) / max(total2 - total, 1))


def threads_for_free_cores(default: int) -> int:
    """Intra-op threads for a CPU run: torch's default, fewer when other work holds cores. OpenMP threads spin
    while they wait, so threads on busy cores cost far more than they add (benchmarks/cpu_load.py; the numbers
    are in docs/performance.md)."""
    busy = None if default == 1 else busy_cores()
    if busy is None:
        return default
    return max(1, min(default, round((os.cpu_count() or 1) - busy)))


def resolve_speed(train, device: torch.device | str) -> SpeedSettings:
    """The settings a TrainConfig asks for on `device`: `train.speed=auto` = the device's defaults (on a CPU,
    threads for the cores that are free now), `eager` = all off; then `train.precision`, `compile`, `tf32`,
    `threads` and `graph` where they are set. gemm_weight_grad stays off under bf16: its kernel is written and measured
    for fp32 (under autocast its saved fp32 inputs would meet bf16 output gradients)."""
    base = speed_defaults(device) if train.speed == "auto" else SpeedSettings()
    if train.speed == "auto" and train.threads is None and torch.device(device).type == "cpu":
        base = replace(base, num_threads=threads_for_free_cores(torch.get_num_threads()))
    chosen = {"precision": train.precision, "compile": train.compile, "tf32": train.tf32,
              "num_threads": train.threads}
    settings = replace(base, **{name: value for name, value in chosen.items() if value is not None})
    if train.graph != "auto":
        if train.graph == "on" and torch.device(device).type != "cuda":
            raise VaeganError(f"train.graph=on needs a CUDA device, not {torch.device(device).type}: CUDA graphs "
                              "replay GPU kernels (use train.graph=auto or off)")
        settings = replace(settings, cuda_graph=train.graph == "on")
    return replace(settings, gemm_weight_grad=settings.gemm_weight_grad and settings.precision == "fp32")


def recorded_speed(record: dict) -> SpeedSettings:
    """The settings a run recorded in its checkpoint; unknown names are refused, not guessed."""
    names = {f.name for f in fields(SpeedSettings)}
    if not isinstance(record, dict) or set(record) - names:
        raise VaeganError(f"the checkpoint records speed settings this vaegan does not know: {record!r}")
    return SpeedSettings(**record)


def speed_record(train, device: torch.device, settings: SpeedSettings) -> dict:
    """What a run records of its speed settings (checkpoint and summary.json)."""
    return {"request": speed_request(train), "device": device.type, "settings": settings.to_dict(),
            "describe": settings.describe()}


def run_speed(train, device: torch.device, recorded: dict | None) -> SpeedSettings:
    """The settings a run trains with: the ones it recorded when it is resumed with the same request on the same
    kind of device (a CPU of another vendor would otherwise switch fast_dropout, and with it the random stream,
    silently); else what the config asks for on `device`."""
    request = recorded.get("request") if isinstance(recorded, dict) else None
    if isinstance(request, dict):  # runs recorded before train.graph existed asked for its default
        request = {"graph": "auto", **request}
    if recorded and request == speed_request(train) and recorded.get("device") == device.type:
        return recorded_speed(recorded.get("settings"))
    return resolve_speed(train, device)


def inference_settings(device: torch.device | str) -> SpeedSettings:
    """For a model opened to evaluate or draw: only the memory layout of the device's defaults, so that opening
    a run changes no process-wide setting (threads, malloc) and no layer."""
    return SpeedSettings(channels_last=speed_defaults(device).channels_last)


def configure_process(settings: SpeedSettings) -> None:
    """Apply the process-wide settings: intra-op threads, host-memory reuse, TF32 and cuDNN autotuning. Call
    once, before training."""
    if settings.num_threads is not None and settings.num_threads != torch.get_num_threads():
        torch.set_num_threads(settings.num_threads)
    if settings.reuse_host_memory:
        set_host_memory_reuse(True)
    torch.backends.cuda.matmul.allow_tf32 = settings.tf32
    torch.backends.cudnn.allow_tf32 = settings.tf32
    torch.backends.cudnn.benchmark = settings.cudnn_benchmark


# mallopt(3) parameters of glibc
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4
_GLIBC_DEFAULT_TRIM_THRESHOLD, _GLIBC_DEFAULT_MMAP_MAX = 128 * 1024, 65536


def set_host_memory_reuse(enabled: bool) -> bool:
    """Make glibc's malloc keep freed memory for reuse (True) or restore its defaults (False).

    PyTorch's CPU allocator has no cache: every activation is a fresh malloc, and glibc serves large blocks
    (above a threshold that starts at 128 KiB and adapts up to 32 MiB) with mmap and unmaps them on free, so
    each training step page-faults its working set in again (docs/performance.md counts the faults). With mmap
    off and the trim threshold at its maximum, freed blocks stay in the
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

    Call it before building the optimiser; process-wide settings are `configure_process`'s. `compile` compiles
    each top-level network (E, G, D) in place, so parameter names stay as they are.
    """
    if settings.fast_dropout:
        use_fast_dropout(model)
    if settings.gemm_weight_grad:
        use_gemm_weight_grad(model)
    if settings.channels_last:
        model.to(memory_format=torch.channels_last)
    if settings.compile != "off":
        for network in model.children():
            network.compile(mode=None if settings.compile == "default" else settings.compile)
    return model


def autocast(precision: str, device: torch.device):
    """bf16 autocast for `precision=bf16`; for any other precision no context at all (so devices and torch
    versions without autocast support never see one)."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


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
