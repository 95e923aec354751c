"""Training steps on a CPU that another training process shares: the measurement behind the thread default.

    python benchmarks/cpu_load.py [--preset vae-cifar10-regularized] [--steps 6] [--tiny]

Prints seconds per step of a preset's training step (built with `build_training`, resident random batches)
alone, as two processes at torch's default thread count each, and as two processes at half of it each, then
the thread count `train.speed=auto` picks while another process trains. `--tiny` shrinks the model to
channels 8, latent 8, batch 16, where the cost of oversubscribed OpenMP threads is the largest share of a step.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

import torch

WORKER = "worker"


def time_steps(preset: str, steps: int, threads: int, tiny: bool) -> float:
    """Seconds per step after two untimed ones."""
    from vaegan.config import apply_overrides, load_preset
    from vaegan.data import NUM_CLASSES
    from vaegan.speed import configure_process, speed_defaults
    from vaegan.training import build_training

    torch.set_num_threads(threads)
    cfg = load_preset(preset)
    if tiny:
        cfg = apply_overrides(cfg, {"model.channels": 8, "model.latent_dim": 8, "train.batch_size": 16})
    device = torch.device("cpu")
    settings = speed_defaults(device)
    configure_process(settings)
    classes = NUM_CLASSES[cfg.data.name]
    step = build_training(cfg, classes, device, settings).step
    x = torch.rand(cfg.train.batch_size, 3, 32, 32) * 2 - 1
    y = torch.randint(0, classes, (cfg.train.batch_size,))
    for _ in range(2):
        step(x, y)
    start = time.perf_counter()
    for _ in range(steps):
        step(x, y)
    return (time.perf_counter() - start) / steps


def processes(count: int, args, threads: int) -> list[float]:
    """Run `count` workers at once; their seconds per step."""
    command = [sys.executable, __file__, WORKER, args.preset, str(args.steps), str(threads), str(int(args.tiny))]
    workers = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True) for _ in range(count)]
    return [float(worker.communicate()[0]) for worker in workers]


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == WORKER:
        preset, steps, threads, tiny = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5] == "1"
        print(time_steps(preset, steps, threads, tiny))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="vae-cifar10-regularized")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--tiny", action="store_true")
    args = parser.parse_args()
    default = torch.get_num_threads()
    half = max(1, default // 2)
    print(f"{args.preset}{' (tiny)' if args.tiny else ''}, seconds per step:")
    print(f"  alone, {default} threads: {processes(1, args, default)[0]:.4f}")
    print("  two processes, {} threads each: {}".format(default, ", ".join(f"{s:.4f}" for s in
                                                                        processes(2, args, default))))
    print("  two processes, {} thread(s) each: {}".format(half, ", ".join(f"{s:.4f}" for s in
                                                                          processes(2, args, half))))
    from vaegan.speed.settings import threads_for_free_cores

    other = subprocess.Popen([sys.executable, __file__, WORKER, args.preset, str(args.steps * 4), str(default),
                              str(int(args.tiny))], stdout=subprocess.DEVNULL)
    time.sleep(3.0)  # let it start training
    print(f"  train.speed=auto would start with {threads_for_free_cores(default)} thread(s) while another run "
          f"trains ({default} alone)")
    other.wait()


if __name__ == "__main__":
    main()
