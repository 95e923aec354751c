"""The CIFAR-100 reference comparison: each preset trained on the same budget, then one table.

    VAEGAN_DATA=DIR python benchmarks/cifar100_presets.py [--epochs 2] [--out runs/cifar100-presets] [PRESET ...]

Every preset gets the same data, batch size, seed and number of epochs. Each run is a normal run directory
under --out: an interrupted run is resumed, a finished one is only read, so the script can be stopped and
started again without losing work. The table gives the test per-pixel MSE and KL (the posterior mean of the
whole test split; KL per latent dimension under the presets' mean reduction), the mean D and G (GAN term)
losses over the last 100 steps, images/s (batch size over the median interval between logged steps, so a
paused or shared machine does not skew it), the training hours that makes, and skipped non-finite steps.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from vaegan.config import apply_overrides, load_preset
from vaegan.errors import VaeganError
from vaegan.evaluation.run import metrics_summary
from vaegan.training.metrics import read_metrics
from vaegan.training.trainer import resume, train

PRESETS = ["vae-cifar100", "gan-cifar100", "cvaegan-cifar100", "cvaegan-cifar100-plus"]


def run(preset: str, epochs: int, run_dir: Path) -> None:
    if (run_dir / "checkpoints" / "last.pt").exists():
        try:
            resume(run_dir, {"train.epochs": epochs})
        except VaeganError as err:
            if "already finished" not in str(err):
                raise
        return
    train(apply_overrides(load_preset(preset), {"train.epochs": epochs}), run_dir)


def row(preset: str, run_dir: Path) -> str:
    numbers = metrics_summary(run_dir)
    records = [r for r in read_metrics(run_dir / "metrics.jsonl") if r["kind"] == "train"]
    step_seconds = statistics.median(b["time"] - a["time"] for a, b in zip(records, records[1:]))
    images_per_second = load_preset(preset).train.batch_size / step_seconds
    test, tail = numbers["test"], numbers["train_tail"]

    def value(source: dict, key: str) -> str:
        return f"{source[key]:.4f}" if key in source else "-"
    return (f"| {preset} | {numbers['summary']['epoch']} | {value(test, 'mse_per_pixel')} | {value(test, 'kl')} | "
            f"{value(tail, 'd_loss')} | {value(tail, 'gan')} | {images_per_second:.1f} | "
            f"{len(records) * step_seconds / 3600:.2f} | {numbers['summary']['nonfinite_steps']} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("presets", nargs="*", default=PRESETS)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("runs/cifar100-presets"))
    args = parser.parse_args()
    for preset in args.presets:
        print(f"== {preset}: {args.epochs} epochs into {args.out / preset}", flush=True)
        run(preset, args.epochs, args.out / preset)
    print("\n| preset | epochs | test MSE/pixel | test KL | D loss (last 100) | G GAN loss (last 100) | images/s | "
          "train hours | non-finite |")
    print("|---|---|---|---|---|---|---|---|---|")
    for preset in args.presets:
        print(row(preset, args.out / preset))


if __name__ == "__main__":
    main()
