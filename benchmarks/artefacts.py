"""Measures of the two artefacts docs/quality.md traces to their causes, for finished runs.

    VAEGAN_DATA=DIR python benchmarks/artefacts.py RUN [RUN ...] [--n 1000] [--device cpu]

For the run's samples (class-balanced, fixed seed), its reconstructions of the first n test images, and those
test images themselves:
- checkerboard: energy at the period-2 frequency of the luma (the 2x2 kernel [[1, -1], [-1, 1]]), which
  a stride-2 ConvTranspose with a 4x4 kernel leaves where its overlapping kernels add up unevenly; printed
  as the ratio to the test images' (1: as much as real images).
- speckle: the share of pixels whose colour sits apart from all 8 neighbours (a channel more than 0.25, on the
  [0, 1] scale, above or below the 3x3 median of that channel) while the neighbourhood's luma is flat (its
  standard deviation under 0.05): isolated coloured dots in flat areas; printed per 10,000 pixels.
- saturated: the share of channel values within 1/255 of black or white, per 100 (a Tanh pinned at +-1
  passes no gradient back).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F

from vaegan.errors import VaeganError
from vaegan.evaluation import features as feat
from vaegan.evaluation.run import load_run
from vaegan.evaluation.sharpness import LUMA
from vaegan.models import evaluation_mode

CHECKER = torch.tensor([[1.0, -1.0], [-1.0, 1.0]]) / 4
SPECKLE_JUMP, FLAT_STD = 0.25, 0.05


def luma(images: torch.Tensor) -> torch.Tensor:
    """[N, 1, H, W] luma on the [0, 1] scale of images in [-1, 1]."""
    return ((images + 1) / 2 * LUMA.to(images.device)[:, None, None]).sum(1, keepdim=True)


def checkerboard_energy(images: torch.Tensor) -> float:
    return F.conv2d(luma(images), CHECKER[None, None].to(images.device)).square().mean().item()


def speckle_share(images: torch.Tensor) -> float:
    unit = (images + 1) / 2
    windows = F.unfold(unit, 3).view(len(images), 3, 9, -1)  # each pixel's 3x3 neighbourhood, per channel
    centre = windows[:, :, 4]
    median = windows.median(dim=2).values
    apart = ((centre - median).abs() > SPECKLE_JUMP).any(dim=1)
    neighbours = torch.cat([windows[:, :, :4], windows[:, :, 5:]], dim=2)
    flat = (neighbours * LUMA.to(images.device)[None, :, None, None]).sum(1).std(dim=1) < FLAT_STD
    return (apart & flat).float().mean().item()


def saturated_share(images: torch.Tensor) -> float:
    return ((images.abs() > 1 - 2 / 255).float().mean()).item()


def measure(images: torch.Tensor) -> dict[str, float]:
    return {"checkerboard": checkerboard_energy(images), "speckle": speckle_share(images),
            "saturated": saturated_share(images)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", type=Path, nargs="+")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    print("| run | checkerboard samples / recon (x real) | speckle per 10k px samples / recon / real | "
          "saturated % samples / recon / real |")
    print("|---|---|---|---|")
    for run_dir in args.runs:
        run = load_run(run_dir, args.device)
        test = run.dataset("test").head(args.n)
        real = torch.cat([x for x, _ in feat.real_batches(test, run.device)])
        samples = torch.cat([x for x, _ in feat.generated_batches(run.model, args.n, 0)])
        with evaluation_mode(run.model):
            recon = torch.cat([run.model(x, y)[0] for x, y in feat.real_batches(test, run.device)])
        real_m, sample_m, recon_m = measure(real), measure(samples), measure(recon)
        print(f"| {run_dir} | {sample_m['checkerboard'] / real_m['checkerboard']:.2f} / "
              f"{recon_m['checkerboard'] / real_m['checkerboard']:.2f} | "
              f"{1e4 * sample_m['speckle']:.1f} / {1e4 * recon_m['speckle']:.1f} / {1e4 * real_m['speckle']:.1f} | "
              f"{100 * sample_m['saturated']:.2f} / {100 * recon_m['saturated']:.2f} / "
              f"{100 * real_m['saturated']:.2f} |")


if __name__ == "__main__":
    try:
        main()
    except VaeganError as err:  # a folder that is not a finished run, a damaged checkpoint: one line
        raise SystemExit(f"artefacts.py: error: {err}") from None
