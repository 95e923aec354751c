"""How fast `vaegan evaluate` is: the offline suite per stage, and the FID Inception's cost per 10k images.

    VAEGAN_DATA=DIR python benchmarks/evaluation_speed.py RUN --classifier FILE [--n 10000] [--inception-images 200]

The offline suite (recon, latent, fcd, cc, pr) runs twice with the same cache folder: the first call computes
and caches the real-image features, the second is the timed one (cached reference features, as in repeated
use). Each stage prints images/s. The Inception network is timed on `--inception-images` images (random
weights: the cost does not depend on them) and extrapolated to 10k.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from vaegan.evaluation.inception import FIDInceptionV3
from vaegan.evaluation.run import load_run
from vaegan.evaluation.suite import Evaluation
from vaegan.runs import RunDir


def timed(label: str, images: int, action) -> float:
    start = time.perf_counter()
    action()
    seconds = time.perf_counter() - start
    print(f"  {label:<34s} {seconds:7.1f} s  {images / seconds:8.1f} images/s  ({images} images)")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--classifier", type=Path, required=True)
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--inception-images", type=int, default=200)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    status = RunDir(args.run).status()
    if not status.complete:
        raise SystemExit(f"{args.run} is not a finished run (checkpoint step {status.step}, no final outputs for "
                         "it): finish it with `vaegan train --resume RUN` first")
    run = load_run(args.run, args.device)
    n_test = min(args.n, len(run.dataset("test")))
    with tempfile.TemporaryDirectory() as cache:
        warm = Evaluation(run, args.n, 0, None, args.classifier, Path(cache))
        print(f"caching real-image features ({run.cfg.data.name}, n={args.n})")
        timed("first call, uncached", args.n + n_test, lambda: warm.run_all(["fcd", "cc", "pr"]))
        evaluation = Evaluation(run, args.n, 0, None, args.classifier, Path(cache))
        print(f"offline suite on {args.n} generated + {n_test} real test images, cached reference features:")
        total = timed("recon (test split)", n_test, lambda: evaluation.recon([]))
        total += timed("latent (train + test means, probe)", 2 * n_test, lambda: evaluation.latent([]))
        total += timed("fcd + cc + pr (generate + features)", args.n,
                       lambda: evaluation.classifier(["fcd", "cc", "pr"]))
        print(f"  total {total:.1f} s (bar: under 120 s)")
    network = FIDInceptionV3().eval().to(memory_format=torch.channels_last).to(run.device)
    images = torch.rand(args.inception_images, 3, 32, 32, device=run.device) * 2 - 1
    with torch.inference_mode():
        network(images[:10])  # warm-up
        start = time.perf_counter()
        for batch in images.split(50):
            network(batch)
        seconds = time.perf_counter() - start
    print(f"FID Inception on {run.device}: {args.inception_images / seconds:.1f} images/s, "
          f"{seconds / args.inception_images * 10_000 / 60:.1f} min per 10k images (FID needs 10k fake + 10k real "
          "once, then cached)")


if __name__ == "__main__":
    main()
