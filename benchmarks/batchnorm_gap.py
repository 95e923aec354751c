"""How much of a finished run's test MSE is its BatchNorm running statistics rather than its weights.

    VAEGAN_DATA=DIR python benchmarks/batchnorm_gap.py RUN [RUN ...] [--batch 128] [--n 1000] [--device cpu]

The toolkit reconstructs in eval mode: each BatchNorm layer normalises with the running statistics it kept in
training. A VAE-GAN's generator runs in training mode on two kinds of input, the encodings (reconstructions)
and prior samples (G's and D's adversarial passes), so its running statistics mix the two, and the last few
dozen steps weigh most (momentum 0.1). This script measures the test MSE of the first n test images, in
batches of `--batch` (default 128, the training batch: batch statistics depend on the batch size), four ways:
with the running statistics everywhere (what `vaegan evaluate` and the ablate tables report), and with each
batch's own statistics in every BatchNorm layer, in the encoder's only and in the decoder's only. Dropout
stays off and z = mu in all four.
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path

import torch
from torch import nn

from vaegan.errors import VaeganError
from vaegan.evaluation import features as feat
from vaegan.evaluation.run import load_run
from vaegan.models import GenerativeModel

MODES = ("running stats", "batch stats", "batch stats in E only", "batch stats in G only")


def with_batch_statistics(model: GenerativeModel, part: str) -> GenerativeModel:
    """A copy of `model` in eval mode whose BatchNorm layers in `part` ("all", "encoder", "decoder" or "none")
    normalise with each batch's statistics. A copy, because a BatchNorm layer in training mode updates its
    running statistics."""
    copied = copy.deepcopy(model).eval()
    parts = {"all": [copied], "encoder": [copied.encoder], "decoder": [copied.decoder], "none": []}[part]
    for network in parts:
        for layer in network.modules():
            if isinstance(layer, nn.modules.batchnorm._BatchNorm):
                layer.train()
    return copied


def test_mse(model: GenerativeModel, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> float:
    squared, count = 0.0, 0
    with torch.inference_mode():
        for x, y in batches:
            recon = model(x, y)[0]
            squared += (recon - x).square().sum().item()
            count += x.numel()
    return squared / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", type=Path, nargs="+")
    parser.add_argument("--batch", type=int, default=128, help="images per batch (default: the training batch)")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    if min(args.batch, args.n) < 1:
        parser.error(f"--batch and --n must be at least 1, got --batch {args.batch} --n {args.n}")
    print("| run | " + " | ".join(f"test MSE/px, {mode}" for mode in MODES) + " |")
    print("|---|" + "---|" * len(MODES))
    for run_dir in args.runs:
        run = load_run(run_dir, args.device)
        if run.model.encoder is None:
            raise VaeganError(f"{run_dir} holds a GAN: it has no encoder, so no reconstructions to measure")
        batches = list(feat.real_batches(run.dataset("test").head(args.n), run.device, batch=args.batch))
        values = [test_mse(with_batch_statistics(run.model, part), batches)
                  for part in ("none", "all", "encoder", "decoder")]
        print(f"| {run_dir} | " + " | ".join(f"{value:.4f}" for value in values) + " |")


if __name__ == "__main__":
    try:
        main()
    except VaeganError as err:  # a folder that is not a finished run, a damaged checkpoint: one line
        raise SystemExit(f"batchnorm_gap.py: error: {err}") from None
