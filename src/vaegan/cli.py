"""The `vaegan` command line. Every user-facing failure ends in one `vaegan: error: ...` line, exit 2."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from vaegan.config import apply_overrides, load_preset, parse_override_args, preset_description, preset_names
from vaegan.errors import VaeganError

DEMO_PRESET = "cvaegan-cifar100"
DEMO_DEFAULTS = {"train.max_steps": "80", "train.eval_images": "2000", "train.ckpt_every": "40"}


def _cmd_presets(args: argparse.Namespace) -> None:
    names = preset_names()
    width = max(map(len, names))
    for name in names:
        print(f"{name:<{width}}  {preset_description(name)}")


def _report(summary: dict, run_dir: Path) -> None:
    test = summary["test"]
    quality = f"test per-pixel MSE {test['mse_per_pixel']:.4f}, KL {test['kl']:.4g}, " if test else ""
    skipped = f", {summary['nonfinite_steps']} non-finite steps skipped" if summary["nonfinite_steps"] else ""
    print(f"done: step {summary['step']}, {quality}{summary['images_per_second']} images/s on "
          f"{summary['device']}{skipped}")
    figures = ", ".join(name + "/" for name in ("samples", "recon") if (run_dir / name).is_dir())
    print(f"outputs in {run_dir}: {figures}, metrics.jsonl, checkpoints/last.pt, model.pt, summary.json")


def _cmd_train(args: argparse.Namespace) -> None:
    from vaegan.training.trainer import resume, train

    overrides = parse_override_args(args.overrides)
    if args.resume:
        run_dir = Path(args.resume)
        summary = resume(run_dir, overrides)
    else:
        cfg = apply_overrides(load_preset(args.preset), overrides)
        run_dir = Path(args.run_dir or f"runs/{args.preset}-{time.strftime('%Y%m%d-%H%M%S')}")
        print(f"training {args.preset} into {run_dir}")
        summary = train(cfg, run_dir, overwrite=args.overwrite)
    _report(summary, run_dir)


def _cmd_demo(args: argparse.Namespace) -> None:
    from vaegan.training.trainer import train

    overrides = {**DEMO_DEFAULTS, **parse_override_args(args.overrides)}
    cfg = apply_overrides(load_preset(DEMO_PRESET), overrides)
    run_dir = Path(args.run_dir)
    print(f"demo: {DEMO_PRESET} on {cfg.data.name} for {cfg.train.max_steps} steps into {run_dir} "
          f"(change with make demo ARGS=\"train.max_steps=N data.name=...\")")
    _report(train(cfg, run_dir, overwrite=True), run_dir)


def _cmd_data_prepare(args: argparse.Namespace) -> None:
    from vaegan.data import prepare_dataset

    info = prepare_dataset(args.name, args.dir)
    print(f"{args.name}: {info['train']} train / {info['test']} test images, {info['classes']} classes "
          f"in {info['path']}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vaegan", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    commands.add_parser("presets", help="list the built-in presets").set_defaults(func=_cmd_presets)

    train = commands.add_parser("train", help="train a preset, or resume a run",
                                description="Train from a preset, or continue a run from its last checkpoint.")
    source = train.add_mutually_exclusive_group(required=True)
    source.add_argument("--preset", help="a preset name (see `vaegan presets`)")
    source.add_argument("--resume", metavar="RUN", help="a run directory to continue")
    train.add_argument("--run-dir", help="where the run writes (default runs/PRESET-TIMESTAMP)")
    train.add_argument("--overwrite", action="store_true", help="replace a run already in --run-dir")
    train.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. train.max_steps=50")
    train.set_defaults(func=_cmd_train)

    demo = commands.add_parser("demo", help=f"a short {DEMO_PRESET} run into runs/demo")
    demo.add_argument("--run-dir", default="runs/demo")
    demo.add_argument("overrides", nargs="*", metavar="key=value")
    demo.set_defaults(func=_cmd_demo)

    data = commands.add_parser("data", help="dataset utilities").add_subparsers(dest="data_command", required=True)
    prepare = data.add_parser("prepare", help="download/verify a dataset, or check a folder, and print counts")
    prepare.add_argument("name", choices=("cifar10", "cifar100", "shapes10"))
    prepare.add_argument("--dir", help="data folder (default: $VAEGAN_DATA or ~/.cache/vaegan)")
    prepare.set_defaults(func=_cmd_data_prepare)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except VaeganError as err:
        print(f"vaegan: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("vaegan: interrupted; a run continues from its last checkpoint with `vaegan train --resume RUN`",
              file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
