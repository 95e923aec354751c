"""Training throughput of the reference VAE against what this machine's matmul speed allows.

    python benchmarks/throughput.py [--steps N] [--warmup N] [--batch-size 128] [--compare] [--preset NAME]
                                    [--device cuda] [--precision bf16] [--compile default] [--json FILE]
                                    [--fuse K [--grouped on|off]]

Prints, from one run on one machine:
  * fp32 matmul GFLOP/s (square 4096 matmul, best of several checks spread between the training windows, with
    the thread count),
  * the training FLOPs per image of the reference VAE (torch.utils.flop_counter over forward + backward of one
    step, divided by the batch size),
  * the bound they imply (images/s = GFLOP/s / GFLOP per image),
  * the measured training images/s of the `vae-cifar10-regularized` preset (or of `--preset NAME`, GAN steps
    included) through `TrainStep` (the code the trainer runs) with the device's default speed settings,
    warm-up steps excluded, and its fraction of the bound: mean over all timed steps against the best matmul
    check (the headline), the best window, and each window against the matmul checks taken just before and
    after it (median over windows; on a shared machine whose speed drifts, this compares like with like),
  * with `--fuse K`: K runs of the preset trained as one fused group, images/s per run and in total (the
    fraction of the bound is then that of all K runs together),
  * the speed of the step's own matrix products (each conv and linear layer's forward, input gradient and
    weight gradient as one GEMM of its shape), against square matmul checks taken around them: the share of
    the bound that a step of those products alone could reach.
`--compare` also measures plain eager PyTorch and each speed setting on its own, interleaved in shuffled rounds
(the machine is noisy: a neighbour's load slows every candidate of a round alike), and prints a table.

The batches are synthetic (uniform in [-1, 1]) and resident: data loading is not part of the number.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from vaegan.config import apply_overrides, load_preset
from vaegan.data import NUM_CLASSES
from vaegan.speed import (SpeedSettings, configure_process, grouped_member_layers, set_host_memory_reuse,
                          speed_defaults)
from vaegan.training import build_training
from vaegan.training.fused import MemberRandom
from vaegan.training.fused.step import GroupedStep, MemberSteps

PRESET = "vae-cifar10-regularized"
MATMUL_SIZE = 4096


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def gemm_gflops(device: torch.device, repeats: int, m: int, k: int, n: int) -> float:
    """Best-of-`repeats` fp32 GFLOP/s of an [m, k] @ [k, n] matmul."""
    a, b = torch.randn(m, k, device=device), torch.randn(k, n, device=device)
    out = torch.mm(a, b)
    synchronize(device)
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b, out=out)
        synchronize(device)
        best = max(best, 2 * m * k * n / (time.perf_counter() - start) / 1e9)
    return best


def matmul_gflops(device: torch.device, repeats: int, n: int = MATMUL_SIZE) -> float:
    """Best-of-`repeats` fp32 GFLOP/s of an n x n @ n x n matmul."""
    return gemm_gflops(device, repeats, n, n, n)


class Candidate:
    """One training configuration: a fresh model, optimisers and TrainStep built as the trainer builds them
    (`build_training`), plus resident batches. With `members` K > 1, K such runs (seeds 0..K-1) trained as one
    fused group (vaegan.training.fused): one grouped step for all on GPUs (`grouped`), each member's own step on
    CPUs."""

    def __init__(self, name: str, settings: SpeedSettings, batch_size: int, device: torch.device,
                 preset: str = PRESET, members: int = 1, grouped: bool | None = None):
        cfg = load_preset(preset)
        self.name, self.settings, self.device, self.members = name, settings, device, members
        classes = NUM_CLASSES[cfg.data.name]
        steps, states = [], []
        for seed in range(members):
            steps.append(build_training(apply_overrides(cfg, {"train.seed": seed}), classes, device, settings).step)
            states.append(MemberRandom.current(device))
        self.model = steps[0].model  # the first run's: its layers' shapes are each run's
        configure_process(settings)  # cuDNN autotuning and TF32 are process-wide
        grouped = grouped_member_layers(device) if grouped is None else grouped
        self.step = steps[0] if members == 1 else (GroupedStep if grouped else MemberSteps)(
            steps, MemberRandom(device, states))

        def batch():
            images = [torch.rand(batch_size, 3, 32, 32, device=device) * 2 - 1 for _ in range(members)]
            labels = [torch.randint(0, classes, (batch_size,), device=device) for _ in range(members)]
            return (images[0], labels[0]) if members == 1 else (images, labels)
        self.batches = [batch() for _ in range(4)]
        self.batch_size, self.calls, self.first_step_s = batch_size * members, 0, None  # images per step, all runs
        self.window_ips: list[float] = []  # images/s of each timed window

    def run(self, steps: int) -> float:
        """Run `steps` steps under this candidate's process settings; returns their wall seconds."""
        default_threads = torch.get_num_threads()
        set_host_memory_reuse(self.settings.reuse_host_memory)  # process-wide: set for each candidate's turn
        configure_process(self.settings)
        try:
            synchronize(self.device)
            start = time.perf_counter()
            for _ in range(steps):
                self.step(*self.batches[self.calls % len(self.batches)])
                self.calls += 1
            synchronize(self.device)
            return time.perf_counter() - start
        finally:
            torch.set_num_threads(default_threads)

    def warm_up(self, steps: int) -> None:
        self.first_step_s = self.run(1)  # includes torch.compile's compilation when compile is on
        if steps > 1:
            self.run(steps - 1)

    def timed(self, steps: int, settle: int = 0) -> None:
        """Time `steps` steps after `settle` untimed ones (which re-warm what the previous candidate evicted)."""
        if settle:
            self.run(settle)
        self.window_ips.append(steps * self.batch_size / self.run(steps))

    @property
    def images_per_second(self) -> float:
        """Images over seconds across all timed windows."""
        windows = [self.batch_size / ips for ips in self.window_ips]  # seconds per step, each window
        return self.batch_size * len(windows) / sum(windows)


def training_step_work(batch_size: int, device: torch.device, preset: str = PRESET
                       ) -> tuple[float, list[tuple[int, int, int]]]:
    """GFLOP per image of one eager training step, and (m, k, n) of the matrix product that each pass of each
    conv and linear layer amounts to in that same step.

    FLOPs are forward + backward, counted by torch.utils.flop_counter; the optimiser's elementwise update is not
    counted. A conv pairs its patches (in_channels*kh*kw values for Conv2d; out_channels*kh*kw for
    ConvTranspose2d, whose forward is a conv's input gradient) with its pixels at the positions the patches sit
    on; a linear layer is a 1x1 conv. Forward, input gradient and weight gradient are the three products of that
    pair. Passes that do not run (no input gradient for the first layer, none at all under no_grad) are left out.
    """
    candidate = Candidate("work", SpeedSettings(), batch_size, device, preset=preset)
    shapes = []

    def record(layer: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        x, transposed = inputs[0], isinstance(layer, nn.ConvTranspose2d)
        if isinstance(layer, nn.Linear):
            positions, patch, pixel = x.numel() // x.shape[-1], layer.in_features, layer.out_features
        elif layer.groups == 1:
            pixels = x if transposed else output
            positions = pixels.shape[0] * pixels.shape[2] * pixels.shape[3]
            taps = layer.kernel_size[0] * layer.kernel_size[1]
            patch, pixel = ((layer.out_channels, layer.in_channels) if transposed
                            else (layer.in_channels, layer.out_channels))
            patch *= taps
        else:
            return
        forward = (positions, pixel, patch) if transposed else (positions, patch, pixel)
        shapes.append(forward)
        if output.requires_grad:
            if x.requires_grad:
                shapes.append((forward[0], forward[2], forward[1]))
            if layer.weight.requires_grad:
                shapes.append((patch, positions, pixel))

    layers = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)
    hooks = [m.register_forward_hook(record) for m in candidate.model.modules() if isinstance(m, layers)]
    counter = FlopCounterMode(display=False)
    with counter:
        candidate.step(*candidate.batches[0])
    for hook in hooks:
        hook.remove()
    return counter.get_total_flops() / batch_size / 1e9, shapes


def layer_shape_matmul(device: torch.device, shapes: list[tuple[int, int, int]], gflop_per_image: float,
                       batch_size: int, square: int = MATMUL_SIZE) -> None:
    """Print the BLAS's speed on the step's own GEMM shapes, against square matmul checks taken just around it.

    The bound assumes every FLOP runs as fast as a square (4096) matmul; the step's layers are smaller and
    skinnier products, and this says how fast even one plain GEMM per pass could go (im2col and
    col2im copies, BatchNorm, dropout and the optimiser not counted).
    """
    before = matmul_gflops(device, 3, square)
    flops = sum(2 * m * k * n for m, k, n in shapes)
    seconds = sum(2 * m * k * n / gemm_gflops(device, 3, m, k, n) / 1e9 for m, k, n in shapes)
    after = matmul_gflops(device, 3, square)
    rate = flops / seconds / 1e9
    checks = (before + after) / 2
    print(f"matmul at the step's own shapes ({len(shapes)} products: forward, input and weight gradients of its "
          f"convs and linears; {flops / 1e9 / batch_size / gflop_per_image:.0%} of its FLOPs): {rate:.1f} GFLOP/s "
          f"best of 3 each, {rate / checks:.0%} of the {square}x{square} checks just around it "
          f"({before:.0f}, {after:.0f}): a step of these products alone, each as fast as the BLAS runs it, would "
          f"reach {rate / checks:.0%} of the bound")


def spread(values: list[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):6.1f} ± {sd:4.1f}  ({min(values):.1f}-{max(values):.1f})"


def peak_rss_mb() -> float | None:
    try:
        import resource
    except ImportError:  # Windows
        return None
    scale = 1024 * 1024 if sys.platform == "darwin" else 1024  # ru_maxrss is bytes on macOS, KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale


def headline(args, device: torch.device, gflop_per_image: float) -> dict:
    """Measure the default settings (with --precision / --compile) against the matmul bound; returns the
    numbers it printed."""
    settings = replace(speed_defaults(device), **{k: v for k, v in (("precision", args.precision),
                                                                     ("compile", args.compile)) if v})
    candidate = Candidate("defaults", settings, args.batch_size, device, preset=args.preset, members=args.fuse,
                          grouped=None if args.grouped is None else args.grouped == "on")
    candidate.warm_up(args.warmup)
    windows = max(1, min(args.windows, args.steps))
    per_window = [args.steps // windows + (i < args.steps % windows) for i in range(windows)]
    gflops = [matmul_gflops(device, args.matmul_repeats, args.matmul_size)]
    for steps in per_window:  # alternate training windows with matmul checks so both see the same machine
        candidate.timed(steps)
        gflops.append(matmul_gflops(device, 2, args.matmul_size))
    peak = max(gflops)
    bound = peak / gflop_per_image
    ips = candidate.images_per_second
    print(f"matmul fp32 {args.matmul_size}x{args.matmul_size}: {peak:.1f} GFLOP/s best of {args.matmul_repeats + 2 * windows} "
          f"({torch.get_num_threads()} threads; per check {min(gflops):.0f}-{peak:.0f})")
    print(f"training FLOPs (forward + backward, batch {args.batch_size}): {gflop_per_image:.4f} GFLOP per image")
    print(f"bound: {bound:.1f} images/s")
    print(f"measured: {ips:.1f} images/s through TrainStep, batch {args.batch_size}, {sum(per_window)} steps "
          f"after {args.warmup} warm-up (per window of ~{per_window[0]} steps: {spread(candidate.window_ips).strip()})")
    if args.fuse > 1:
        print(f"fused: {args.fuse} runs, {type(candidate.step).__name__}: {ips / args.fuse:.1f} images/s per run, "
              f"{ips:.1f} in total")
    rss = peak_rss_mb()
    print(f"settings: {settings.describe()}; first step {candidate.first_step_s:.1f} s"
          + (f"; peak RSS {rss:.0f} MB" if rss else ""))
    print(f"fraction of bound: {ips / bound:.1%} (best window {max(candidate.window_ips) / bound:.1%})")
    # The matmul speed of this shared VM moves by +-10% within a run (other tenants, clock boost). Against the
    # checks just before and after it, each window is compared with the machine as it was at that time.
    paired = [window * gflop_per_image / ((before + after) / 2)
              for window, before, after in zip(candidate.window_ips, gflops, gflops[1:])]
    print(f"fraction against the matmul checks around each window: median {statistics.median(paired):.1%} "
          f"(windows {min(paired):.1%}-{max(paired):.1%})")
    return {"preset": args.preset, "device": str(device), "settings": settings.describe(), "fuse": args.fuse,
            "images_per_second": ips, "first_step_seconds": candidate.first_step_s, "matmul_gflops": peak,
            "gflop_per_image": gflop_per_image, "fraction_of_bound": ips / bound}


def compare(args, device: torch.device, gflop_per_image: float, peak_gflops: float) -> None:
    eager = SpeedSettings()
    defaults = speed_defaults(device)
    specs = [("eager", eager),
             ("+channels_last", replace(eager, channels_last=True)),
             ("+fused_adam", replace(eager, fused_adam=True)),
             ("+fast_dropout", replace(eager, fast_dropout=True)),
             ("+gemm_weight_grad", replace(eager, gemm_weight_grad=True)),
             ("+reuse_host_memory", replace(eager, reuse_host_memory=True)),
             ("+compile", replace(eager, compile="default")),
             ("num_threads=1", replace(eager, num_threads=1)),
             ("defaults", defaults),
             ("defaults+compile", replace(defaults, compile="default"))]
    if not args.all:
        specs = [spec for spec in specs if spec[0] != "num_threads=1"]
    candidates = []
    for name, settings in specs:
        candidate = Candidate(name, settings, args.batch_size, device)
        candidate.warm_up(args.warmup)
        print(f"  built {name}: first step {candidate.first_step_s:.1f} s", file=sys.stderr, flush=True)
        candidates.append(candidate)
    rounds = max(1, args.rounds)
    per_round = max(1, args.steps // rounds)
    order = random.Random(0)
    gflops = []
    for r in range(rounds):
        gflops.append(matmul_gflops(device, 2, args.matmul_size))
        for candidate in order.sample(candidates, len(candidates)):
            candidate.timed(per_round, settle=1)
        print(f"  round {r + 1}/{rounds} done", file=sys.stderr, flush=True)
    peak = max(peak_gflops, *gflops)
    bound = peak / gflop_per_image
    base = candidates[0]
    print(f"\n{rounds} interleaved rounds x {per_round} timed steps (+1 untimed) per candidate, "
          f"batch {args.batch_size}; bound {bound:.1f} images/s (matmul {peak:.1f} GFLOP/s); "
          f"defaults = {defaults.describe()}")
    print(f"{'candidate':20s} {'images/s: mean ± sd (min-max)':32s} {'of bound':>8s} {'vs eager':>8s} "
          f"{'first step':>10s}")
    for c in candidates:
        ratio = statistics.median(b / a for a, b in zip(base.window_ips, c.window_ips))  # paired by round
        typical = c.batch_size / statistics.median(c.window_ips)
        print(f"{c.name:20s} {spread(c.window_ips):32s} {c.images_per_second / bound:8.1%} {ratio:7.3f}x "
              f"{c.first_step_s:9.1f}s" + (f"  (compile ~{c.first_step_s - typical:.0f} s)"
                                          if c.settings.compile != "off" else ""))
    print("vs eager: median over rounds of the paired speed ratio; first step includes any compilation "
          "(torch.compile caches compiled code across runs, so a second run compiles faster)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=None,
                        help="timed steps (default 30; with --compare, per candidate, default 12)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (default 3)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--compare", action="store_true",
                        help="also measure eager and each speed setting alone, interleaved, as a table")
    parser.add_argument("--rounds", type=int, default=4, help="interleaved rounds for --compare (default 4)")
    parser.add_argument("--windows", type=int, default=5, help="timing windows of the headline run (default 5)")
    parser.add_argument("--matmul-repeats", type=int, default=5)
    parser.add_argument("--matmul-size", type=int, default=MATMUL_SIZE,
                        help=f"side of the square matmul behind the bound (default {MATMUL_SIZE}; smaller only for "
                        "a quick check of the script, as the bound then runs low)")
    parser.add_argument("--all", action="store_true",
                        help="with --compare: also the single-thread row (settled: ~0.6x)")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda or mps")
    parser.add_argument("--precision", choices=("fp32", "bf16"), help="override the device's default")
    parser.add_argument("--compile", choices=("off", "default", "reduce-overhead"),
                        help="override the device's default (off)")
    parser.add_argument("--skip-shapes", action="store_true", help="leave out the per-shape GEMM timing")
    parser.add_argument("--fuse", type=int, default=1, help="K runs (seeds 0..K-1) trained as one fused group; "
                        "images/s are then per run and in total (default 1: one run)")
    parser.add_argument("--grouped", choices=("on", "off"), help="fused: one grouped step for all runs (on) or "
                        "each run's own step (off); default: on for GPUs, off for CPUs")
    parser.add_argument("--json", help="also write the headline numbers to this JSON file")
    parser.add_argument("--preset", default=PRESET,
                        help=f"whose training step to time (default {PRESET}; --compare always uses it)")
    args = parser.parse_args(argv)
    if args.matmul_size < 64:
        parser.error(f"--matmul-size {args.matmul_size}: give 64 or more (a smaller matmul times nothing but overhead)")
    device = torch.device(args.device)
    if args.steps is None:
        args.steps = 12 if args.compare else 30

    print(f"torch {torch.__version__} on {device.type}: {torch.get_num_threads()} intra-op threads, "
          f"{torch.get_num_interop_threads()} inter-op threads; preset {args.preset}")
    gflop_per_image, shapes = training_step_work(args.batch_size, device, args.preset)
    numbers = headline(args, device, gflop_per_image)
    if args.json:
        Path(args.json).write_text(json.dumps(numbers, indent=2) + "\n")
    if not args.skip_shapes:
        layer_shape_matmul(device, shapes, gflop_per_image, args.batch_size, args.matmul_size)
    if args.compare:
        print()
        compare(args, device, training_step_work(args.batch_size, device)[0], numbers["matmul_gflops"])


if __name__ == "__main__":
    main()
