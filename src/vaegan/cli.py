"""The `vaegan` command line. Every user-facing failure ends in one `vaegan: error: ...` line, exit 2."""

from __future__ import annotations

import argparse
import functools
import logging
import sys
from pathlib import Path

from vaegan.ablation import FUSE_CHOICES, MEASURE_IMAGES
from vaegan.ablation.cluster import EXECUTORS
from vaegan.config import DATASET_NAMES, apply_overrides, load_preset, parse_override_args, preset_description, preset_names
from vaegan.errors import StoppedByAnotherRank, VaeganError
from vaegan.evaluation import METRICS
from vaegan.reproduce import CHOICES as REPRODUCIBLE

OUT_OF_MEMORY = ("out of memory", "can't allocate memory")  # torch's CUDA/MPS and CPU allocator messages
DEMO_PRESET = "cvaegan-cifar100"
POOL = "pool"  # the executor that runs --jobs worker processes here (the others are submitit's)
DEMO_DEFAULTS = {"train.max_steps": "80", "train.eval_images": "2000", "train.ckpt_every": "40"}


def _cmd_presets(args: argparse.Namespace) -> None:
    names = preset_names()
    width = max(map(len, names))
    for name in names:
        print(f"{name:<{width}}  {preset_description(name)}")


def _report(run) -> None:
    """The last lines of `vaegan train` and `vaegan demo`: the final numbers and where the outputs are."""
    summary, rundir = run.summary, run.rundir
    test = summary["test"]
    quality = f"test per-pixel MSE {test['mse_per_pixel']:.4f}, KL {test['kl']:.4g}, " if test else ""
    skipped = f", {summary['nonfinite_steps']} non-finite steps skipped" if summary["nonfinite_steps"] else ""
    speed = (f"{summary['images_per_second']} images/s" if summary["images_per_second"]
             else "final outputs completed")
    print(f"done: step {summary['step']}, {quality}{speed} on {summary['device']}{skipped}")
    outputs = [folder.name + "/" for folder in rundir.grid_folders()]
    outputs += [str(path.relative_to(run.path)) for path in (rundir.metrics_file, rundir.checkpoint, rundir.model,
                                                             rundir.summary)]
    print(f"outputs in {run.path}: {', '.join(outputs)}")


def _cmd_train(args: argparse.Namespace) -> None:
    from vaegan import api
    from vaegan.training.distributed import Ranks

    main_process = Ranks.from_environment().main  # under torchrun only rank 0 prints
    overrides = parse_override_args(args.overrides)
    if args.resume:
        run = api.resume(args.resume, overrides)
    else:
        if not args.run_dir and not main_process:
            raise VaeganError("under torchrun give --run-dir: every rank must name the same folder")
        run_dir = Path(args.run_dir) if args.run_dir else api.training.default_run_dir(args.preset)
        apply_overrides(load_preset(args.preset), overrides)  # a bad key or value fails before the first line
        if main_process:
            print(f"training {args.preset} into {run_dir}")
        run = api.train(args.preset, run_dir, overrides, overwrite=args.overwrite)
    if main_process:
        _report(run)


def _cmd_demo(args: argparse.Namespace) -> None:
    from vaegan import api

    overrides = {**DEMO_DEFAULTS, **parse_override_args(args.overrides)}
    cfg = apply_overrides(load_preset(DEMO_PRESET), overrides)
    print(f"demo: {DEMO_PRESET} on {cfg.data.name} for {cfg.train.max_steps} steps into {args.run_dir} "
          f"(change with make demo ARGS=\"train.max_steps=N data.name=...\")")
    run = api.train(DEMO_PRESET, args.run_dir, overrides, overwrite=True)
    _report(run)
    print(f"all figures and numbers in one page: .venv/bin/vaegan report {run.path}")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not >= 1")
    return value


def parse_classes(text: str, num_classes: int) -> list[int]:
    """'0-7', '3,5,9' or '0-3,8' -> class indices, each checked against the model's classes (before a range is
    expanded, so '0-2000000000' is refused at once)."""
    classes: list[int] = []
    for part in text.split(","):
        low, _, high = part.strip().partition("-")
        try:
            first, last = int(low), int(high or low)
        except ValueError:
            raise VaeganError(f"invalid --classes '{text}': use a range like 0-7 or a list like 3,5,9") from None
        if not 0 <= first <= last < num_classes:
            raise VaeganError(f"invalid --classes '{text}': this model has classes 0-{num_classes - 1}")
        classes += range(first, last + 1)
    return classes


def _open_run(args: argparse.Namespace):
    """The run named on the command line, opened through the Python API."""
    from vaegan import api

    return api.open_run(args.run, args.device)


def _figure_path(args: argparse.Namespace, run, name: str) -> Path:
    return Path(args.out) if args.out else run.rundir.figure(name)


def _cmd_sample(args: argparse.Namespace) -> None:
    run = _open_run(args)
    classes = None
    if args.classes is not None:
        if not run.model.conditional:
            raise VaeganError(f"{run.path} holds an unconditional model: it has no classes to ask for; "
                              "drop --classes for a plain grid")
        classes = parse_classes(args.classes, run.model.num_classes)
    picture = run.sample_grid(classes, args.per_class, args.seed, out=_figure_path(args, run, "samples.png"))
    print(f"{picture.path}: {'EMA' if run.uses_ema else 'raw'} generator of step {run.step}")


def _cmd_reconstruct(args: argparse.Namespace) -> None:
    run = _open_run(args)
    out = _figure_path(args, run, f"reconstructions-{args.split}.png")
    picture = run.reconstruction_grid(args.n, args.split, out=out)
    numbers = picture.numbers
    print(f"per-pixel MSE in [-1,1]: {numbers['batch_mse_per_pixel']:.4f} on the first {args.n} {args.split} "
          f"images, {numbers['split_mse_per_pixel']:.4f} on all {numbers['images']}")
    print(f"written to {picture.path}")


def _cmd_interpolate(args: argparse.Namespace) -> None:
    run = _open_run(args)
    pictures = run.interpolation_grids(args.pairs, args.steps, args.mode, args.seed,
                                       out=_figure_path(args, run, f"interpolation-{args.mode}.png"))
    print("written to " + ", ".join(str(picture.path) for picture in pictures.values()))


def _cmd_latent_map(args: argparse.Namespace) -> None:
    run = _open_run(args)
    out = _figure_path(args, run, f"latent-map-{args.method}.png")
    picture = run.latent_map(args.n, args.method, args.seed, out=out)
    result = picture.numbers
    coarse = (f", {result['knn_accuracy_superclass']:.1%} over superclasses"
              if "knn_accuracy_superclass" in result else "")
    print(f"5-NN accuracy of {result['images']} test means: {result['knn_accuracy']:.1%}{coarse}; "
          f"written to {picture.path}")


def _cmd_report(args: argparse.Namespace) -> None:
    run = _open_run(args)
    page = run.report(latent_images=args.latent_images)
    print(f"written to {page} (figures in {run.rundir.figures})")


def _cmd_export(args: argparse.Namespace) -> None:
    run = _open_run(args)
    written = run.export(args.out)
    print(f"written to {', '.join(map(str, written))} (load with torch.export.load; vaegan is not needed)")


def _cmd_compare(args: argparse.Namespace) -> None:
    from vaegan.viz.report import write_comparison

    from vaegan import api

    runs = [api.open_run(run, args.device).opened for run in args.runs]
    page = write_comparison(runs, Path(args.out), seed=args.seed)
    print(f"written to {page}")


def _cmd_curves(args: argparse.Namespace) -> None:
    from vaegan import api

    runs = [api.Run(path) for path in args.run]
    if len(runs) == 1:
        run = runs[0]
        picture = run.curves(out=Path(args.out) if args.out else run.rundir.figure("curves.png"))
        print(f"written to {picture.path}")
        if run.metrics("quality", as_frame=False):
            quality = api.quality_curves(runs, picture.path.with_name(f"{picture.path.stem}-quality.png"))
            print(f"written to {quality.path}")
        return
    if not args.out:
        raise VaeganError("several runs are compared on one picture: say where with --out PNG")
    print(f"written to {api.quality_curves(runs, Path(args.out)).path}")


def _cmd_evaluate(args: argparse.Namespace) -> None:
    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()]
    run = _open_run(args)
    record = run.evaluate(metrics, args.n, args.seed, args.classifier, args.inception_weights,
                          inception_precision=args.inception_precision)
    for name, value in record["metrics"].items():
        numbers = {k: v for k, v in value.items() if k != "protocol" and isinstance(v, (int, float))}
        print(f"{name}: " + ", ".join(f"{k} {v:.4g}" for k, v in numbers.items()))
    by_reason: dict[str, list[str]] = {}
    for name, reason in record["skipped"].items():
        by_reason.setdefault(reason, []).append(name)
    for reason, names in by_reason.items():  # one line per cause: fid, kid, is share the missing weights
        print(f"{', '.join(names)}: skipped: {reason}")
    print(f"written to {run.rundir.eval} ({record['generator']} generator, seed {record['seed']})")


def _cmd_classifier_train(args: argparse.Namespace) -> None:
    from vaegan.data import load_split
    from vaegan.evaluation.classifier import ClassifierConfig, train_classifier

    overrides = {"data.name": args.dataset, **parse_override_args(args.overrides, ClassifierConfig)}
    cfg = apply_overrides(ClassifierConfig(), overrides)
    splits = [load_split(cfg.data, split, cfg.train.seed) for split in ("train", "test")]
    out = Path(args.out or f"runs/classifier-{splits[0].name}.pt")
    result = train_classifier(cfg, *splits, out)
    print(f"{args.dataset} classifier: test accuracy {result['test_accuracy']:.2%} after {result['steps']} steps "
          f"({result['train_seconds']} s); written to {out}")


def _budget(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"{value} is not a fraction in (0, 1]")
    return value


def _pool_executor(args: argparse.Namespace):
    """With --jobs N > 1: cells in N worker processes on the --devices slots; else None (one after another)."""
    from vaegan.ablation.pool import plan_slots, run_pool

    if args.jobs == 1:
        return None
    devices = [d.strip() for d in args.devices.split(",") if d.strip()] if args.devices else None
    slots = plan_slots(args.jobs, devices, args.jobs_per_device, args.device)
    print(f"{args.jobs} cells at a time on " + ", ".join(
        f"{s.device}{'' if s.visible_gpu is None else ':' + s.visible_gpu} ({s.threads} threads)" for s in slots))
    return functools.partial(run_pool, slots=slots)


def _cmd_reproduce(args: argparse.Namespace) -> None:
    from vaegan.reproduce.experiments import Options
    from vaegan.reproduce.run import reproduce

    out = Path(args.out or f"runs/reproduce-{args.experiment}")
    options = Options(out, args.budget, args.seeds, [Path(path) for path in args.classifier or []], args.device,
                      parse_override_args(args.overrides), args.subset, _pool_executor(args), args.fuse,
                      args.measure_images)
    markdown, page, outcomes = reproduce(args.experiment, options)
    for outcome in outcomes:
        print(f"{outcome.title}:")
        for finding in outcome.findings:
            print(f"  {finding.verdict:<27} {finding.claim}")
    print(f"report: {markdown}, {page}")


def _cmd_ablate(args: argparse.Namespace) -> None:
    from vaegan.ablation.cluster import run_cluster
    from vaegan.ablation.grids import load_grid
    from vaegan.ablation.runner import SuiteOptions, run_grid
    from vaegan.ablation.table import check_tables, claim_line, write_tables
    from vaegan.evaluation.inception import INCEPTION_WEIGHTS
    from vaegan.runs.cache import cache_dir

    grid = load_grid(args.grid)
    overrides = parse_override_args(args.overrides)
    out = Path(args.out or f"runs/ablate-{grid.name}")
    inception = INCEPTION_WEIGHTS.present(args.inception_weights, cache_dir())
    suite = SuiteOptions(Path(args.classifier) if args.classifier else None, str(inception) if inception else None,
                         args.measure_images)
    if args.executor != POOL:
        executor = functools.partial(run_cluster, kind=args.executor, folder=out / "submitit",
                                     timeout_minutes=args.timeout_min, gpus=args.gpus_per_job, parallel=args.jobs)
    else:
        executor = _pool_executor(args)
    check_tables(out)
    cells, budget_line = run_grid(grid, out, args.seeds, args.budget, overrides, args.device, suite,
                                  executor=executor, fuse=args.fuse)
    paths = write_tables(grid, cells, out, budget_line)
    print(budget_line)
    for claim in grid.claims:
        print(claim_line(claim, cells))
    print(f"tables: {paths['md']}, {paths['csv']}, {paths['html']}")
    failed = [c for c in cells if c.error]
    if failed:
        raise VaeganError(f"{len(failed)} of {len(cells)} cells failed (listed in the tables; rerun to retry "
                          f"them): {failed[0].variant} seed {failed[0].seed}: {failed[0].error}")


def _cmd_data_prepare(args: argparse.Namespace) -> None:
    from vaegan.data import prepare_dataset

    info = prepare_dataset(args.name, args.dir)
    print(f"{args.name}: {info['train']} train / {info['test']} test images, {info['classes']} classes "
          f"in {info['path']}")


Commands = "argparse._SubParsersAction[argparse.ArgumentParser]"


def _add_train(commands: Commands) -> None:
    train = commands.add_parser("train", help="train a preset, or resume a run",
                                description="Train from a preset, or continue a run from its last checkpoint.")
    source = train.add_mutually_exclusive_group(required=True)
    source.add_argument("--preset", help="a preset name (see `vaegan presets`)")
    source.add_argument("--resume", metavar="RUN", help="a run directory to continue")
    train.add_argument("--run-dir", help="where the run writes (default runs/PRESET-TIMESTAMP)")
    train.add_argument("--overwrite", action="store_true", help="replace a run already in --run-dir")
    train.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. train.max_steps=50")
    train.set_defaults(func=_cmd_train)


def _add_demo(commands: Commands) -> None:
    demo = commands.add_parser("demo", help=f"a short {DEMO_PRESET} run into runs/demo")
    demo.add_argument("--run-dir", default="runs/demo")
    demo.add_argument("overrides", nargs="*", metavar="key=value")
    demo.set_defaults(func=_cmd_demo)


def _run_command(commands: Commands, name: str, help_text: str, func, writes_figure: bool = True
                 ) -> argparse.ArgumentParser:
    """A command that opens one run: RUN, --device and, when it writes one figure, --out."""
    command = commands.add_parser(name, help=help_text, description=help_text)
    command.add_argument("run", metavar="RUN", help="a run directory (its checkpoints/last.pt is used)")
    if writes_figure:
        command.add_argument("--out", help="the PNG to write (default RUN/figures/...)")
    command.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N or mps")
    command.set_defaults(func=func)
    return command


def _add_figure_commands(commands: Commands) -> None:
    sample = _run_command(commands, "sample", "a grid of samples from fixed z: rows = classes for conditional "
                          "models", _cmd_sample)
    sample.add_argument("--classes", help="rows, e.g. 0-7 (default) or 3,5,9")
    sample.add_argument("--per-class", type=_positive_int, default=8, help="columns (default 8)")
    sample.add_argument("--seed", type=int, default=0)

    reconstruct = _run_command(commands, "reconstruct", "real images over their reconstructions, with the "
                               "per-pixel MSE", _cmd_reconstruct)
    reconstruct.add_argument("--n", type=_positive_int, default=16, help="images shown (default 16)")
    reconstruct.add_argument("--split", choices=("test", "train"), default="test")

    interpolate = _run_command(commands, "interpolate", "decode along paths between two encoded test images",
                               _cmd_interpolate)
    interpolate.add_argument("--pairs", type=_positive_int, default=4)
    interpolate.add_argument("--steps", type=_positive_int, default=10)
    interpolate.add_argument("--mode", choices=("linear", "slerp"), default="linear")
    interpolate.add_argument("--seed", type=int, default=0)

    latent_map = _run_command(commands, "latent-map", "2-D map of test-set posterior means coloured by class",
                              _cmd_latent_map)
    latent_map.add_argument("--n", type=_positive_int, default=5000, help="test images (default 5000)")
    latent_map.add_argument("--method", choices=("pca", "tsne"), default="pca")
    latent_map.add_argument("--seed", type=int, default=0)


def _add_pages(commands: Commands) -> None:
    report = _run_command(commands, "report", "every figure, the metrics, the config and the hardware in "
                          "RUN/report.html", _cmd_report, writes_figure=False)
    report.add_argument("--latent-images", type=_positive_int, default=2000,
                        help="test images in the latent map (default 2000)")

    compare = commands.add_parser("compare", help="several runs side by side in one HTML page")
    compare.add_argument("runs", nargs="+", metavar="RUN")
    compare.add_argument("--out", default="runs/compare.html", help="the page (default runs/compare.html)")
    compare.add_argument("--seed", type=int, default=0, help="the sample grids' seed, shared by all runs")
    compare.add_argument("--device", default="auto")
    compare.set_defaults(func=_cmd_compare)

    curves = commands.add_parser("curves", help="loss curves from RUN/metrics.jsonl (smoothed, raw faint behind); "
                                 "with several runs, their sample quality on one picture")
    curves.add_argument("run", metavar="RUN", nargs="+",
                        help="one run: its loss curves (and quality curves, when it logged them); several runs: "
                        "their FCD and class consistency against images seen and training seconds")
    curves.add_argument("--out", help="the PNG to write (one run: default RUN/figures/curves.png, its quality "
                        "curves beside it as curves-quality.png; several runs: required)")
    curves.set_defaults(func=_cmd_curves)


def _add_evaluate(commands: Commands) -> None:
    evaluate = _run_command(commands, "evaluate", "metrics of a run with their protocol, into RUN/eval.json",
                            _cmd_evaluate, writes_figure=False)
    evaluate.add_argument("--n", type=_positive_int, default=10_000, help="generated (and real) images")
    evaluate.add_argument("--metrics", default=",".join(METRICS))
    evaluate.add_argument("--classifier", help="a classifier file from `vaegan classifier train`")
    evaluate.add_argument("--inception-weights", help="the FID Inception weights (else $VAEGAN_INCEPTION)")
    evaluate.add_argument("--inception-precision", choices=("fp32", "tf32", "bf16"), default="fp32",
                          help="fp32 (the standard FID protocol), or faster on a GPU: tf32 or bf16 (recorded)")
    evaluate.add_argument("--seed", type=int, default=0)


def _add_export(commands: Commands) -> None:
    export = _run_command(commands, "export", "the generator (and encoder) as torch.export files that load "
                          "without vaegan", _cmd_export, writes_figure=False)
    export.add_argument("--out", required=True, help="the generator's file, e.g. generator.pt2 (the encoder goes "
                        "beside it as NAME-encoder.pt2)")


def _add_classifier(commands: Commands) -> None:
    classifier = commands.add_parser("classifier", help="the offline feature extractor for FCD and class "
                                     "consistency").add_subparsers(dest="classifier_command", required=True)
    train = classifier.add_parser("train", help="train the compact metrics classifier on a dataset")
    train.add_argument("--dataset", required=True, choices=DATASET_NAMES,
                       help="as data.name; folder and npz read data.dir=PATH")
    train.add_argument("--out", help="default runs/classifier-DATASET.pt")
    train.add_argument("overrides", nargs="*", metavar="key=value",
                       help="e.g. train.epochs=5 model.channels=32 train.device=cpu")
    train.set_defaults(func=_cmd_classifier_train)


def _add_job_options(command: argparse.ArgumentParser, jobs_help: str, per_device_help: str) -> None:
    """--jobs, --devices and --jobs-per-device: cells in worker processes on device slots (_pool_executor)."""
    command.add_argument("--jobs", type=_positive_int, default=1, help=jobs_help)
    command.add_argument("--devices", help="the devices the jobs share, e.g. cuda:0,cuda:1 or cpu (default --device)")
    command.add_argument("--jobs-per-device", type=_positive_int, help=per_device_help)
    command.add_argument("--fuse", choices=FUSE_CHOICES, default="auto",
                         help="auto (default): cells trained here whose configs build the same tensor shapes (seeds, "
                         "variants that differ in values only) train as one fused model, each in its own run folder; "
                         "off: one after another. Cells given to --jobs or --executor train one per job")


def _add_measure_images(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--measure-images", type=_positive_int, default=MEASURE_IMAGES, metavar="N",
                        help="samples and test images each run is measured on (default %(default)s; fewer make a "
                        "quick smoke run, with noisier numbers)")


def _add_ablate(commands: Commands) -> None:
    ablate = commands.add_parser("ablate", help="a grid of runs over seeds, as tables (resumable)",
                                 description="Train every variant of GRID for each seed on one budget, then write "
                                 "DIR/table.md, table.csv and table.html. Stopping and starting again loses nothing.")
    ablate.add_argument("grid", metavar="GRID", help="regularization, baselines, or a grid YAML file")
    ablate.add_argument("--seeds", type=_positive_int, default=3)
    ablate.add_argument("--budget", type=_budget, help="a fraction of each preset's schedule, e.g. 0.05")
    ablate.add_argument("--out", help="default runs/ablate-GRID")
    ablate.add_argument("--device", default="auto", help="where cells train and are measured (default auto)")
    _add_job_options(ablate, "cells at once, each in its own process (default 1: one after another here)",
                     "jobs on each of --devices (default: --jobs spread evenly)")
    ablate.add_argument("--executor", choices=(POOL, *EXECUTORS), default=POOL,
                        help="pool (default: processes here), slurm (a job array through submitit, requeued and "
                        "resumed on preemption), local (the same submitit jobs as processes here)")
    ablate.add_argument("--timeout-min", type=_positive_int, default=240, help="per Slurm task (default 240)")
    ablate.add_argument("--gpus-per-job", type=int, default=1, help="per Slurm task (default 1)")
    ablate.add_argument("--classifier", help="adds FCD and class consistency (a `vaegan classifier train` file)")
    ablate.add_argument("--inception-weights", help="adds FID (else $VAEGAN_INCEPTION or the cached file, if any)")
    _add_measure_images(ablate)
    ablate.add_argument("overrides", nargs="*", metavar="key=value", help="applied to every variant")
    ablate.set_defaults(func=_cmd_ablate)


def _add_reproduce(commands: Commands) -> None:
    repro = commands.add_parser(
        "reproduce", help="both reference experiments end to end, with a verdict on every claim",
        description="Train, evaluate and judge a reference experiment (or all) into OUT/report.md and "
                    "OUT/report.html: the metrics classifier, the runs and grids it needs, their figures, and one "
                    "row per claim of the reference with the measured value, a verdict and the rule behind it. "
                    "Killed and started again, it continues where it stopped.")
    repro.add_argument("experiment", choices=REPRODUCIBLE)
    repro.add_argument("--budget", type=_budget, default=1.0,
                       help="a fraction of the references' 20-epoch schedules (default 1.0)")
    repro.add_argument("--out", help="default runs/reproduce-EXPERIMENT")
    repro.add_argument("--seeds", type=_positive_int, default=2)
    repro.add_argument("--classifier", action="append",
                       help="a `vaegan classifier train` file, used for the experiment on its dataset (give one "
                       "per dataset; default: trained into OUT at the budget's share of its schedule)")
    repro.add_argument("--subset", type=_positive_int, default=256,
                       help="training images of the CIFAR-10 small-data comparison (default %(default)s, where the "
                       "unregularised VAE overfits within about 200 steps: docs/reproduce.md)")
    repro.add_argument("--device", default="auto")
    _add_measure_images(repro)
    _add_job_options(repro, "cells at once, each in its own process", "jobs on each of --devices")
    repro.add_argument("overrides", nargs="*", metavar="key=value",
                       help="applied to every run, e.g. data.name=shapes10 for a quick stand-in")
    repro.set_defaults(func=_cmd_reproduce)


def _add_data(commands: Commands) -> None:
    data = commands.add_parser("data", help="dataset utilities").add_subparsers(dest="data_command", required=True)
    prepare = data.add_parser("prepare", help="download/verify a dataset, or check a folder, and print counts")
    prepare.add_argument("name", choices=DATASET_NAMES)
    prepare.add_argument("--dir", help="data folder (default: $VAEGAN_DATA or ~/.cache/vaegan); for folder and "
                         "npz the folder or file to read")
    prepare.set_defaults(func=_cmd_data_prepare)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vaegan", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("presets", help="list the built-in presets").set_defaults(func=_cmd_presets)
    for add in (_add_train, _add_demo, _add_figure_commands, _add_pages, _add_evaluate, _add_export,
                _add_classifier,
                _add_ablate, _add_reproduce, _add_data):
        add(commands)
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Like `parse_args`, but key=value overrides may also follow the options (`ablate GRID --seeds 2 k=v`),
    which argparse alone refuses once options sit between positionals."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        if not hasattr(args, "overrides") or any(token.startswith("-") or "=" not in token for token in extra):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.overrides = [*args.overrides, *extra]
    return args


def _runtime_error_message(err: Exception) -> str | None:
    """The line for the failures torch reports as a RuntimeError that a user can act on; None for the others."""
    if isinstance(err, MemoryError) or any(text in str(err) for text in OUT_OF_MEMORY):
        return ("out of memory: lower train.batch_size or the model's size (model.channels, model.latent_dim), or "
                "the number of images a command draws")
    from torch.distributed import DistError

    if isinstance(err, DistError):  # under torchrun, when no rank failed first: a timeout or a lost connection
        return f"the processes of this run lost contact: {str(err).strip().splitlines()[0]}"
    return None


def one_line(text: str) -> str:
    """`text` with control characters escaped (a class folder may be named 'ca\\nt'): one message, one line."""
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in str(text))


class _Console(logging.Handler):
    """vaegan's log records on the terminal: warnings as `vaegan: warning: ...` lines on stderr, progress (info)
    as plain lines on stdout. The streams are looked up per record, so redirected ones are honoured."""

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.WARNING:
            print(f"vaegan: warning: {one_line(record.getMessage())}", file=sys.stderr)
        else:
            print(record.getMessage(), file=sys.stdout)


def show_log_records() -> None:
    """Route the package's log records (its one channel for warnings and progress) to the terminal, once."""
    logger = logging.getLogger("vaegan")
    if not any(isinstance(handler, _Console) for handler in logger.handlers):
        logger.addHandler(_Console())
        logger.setLevel(logging.INFO)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    show_log_records()
    try:
        args.func(args)
    except StoppedByAnotherRank:  # under torchrun: the rank that failed first printed why
        return 1
    except VaeganError as err:
        print(f"vaegan: error: {one_line(err)}", file=sys.stderr)
        return 2
    except OSError as err:  # a write or read no vaegan code foresaw: still one line, never a traceback
        where = f"{err.filename}: " if err.filename else ""
        print(f"vaegan: error: {one_line(where + str(err.strerror or err))}", file=sys.stderr)
        return 2
    except (MemoryError, RuntimeError) as err:
        message = _runtime_error_message(err)
        if message is None:  # a bug: its traceback is what a report needs
            raise
        print(f"vaegan: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("vaegan: interrupted; a run continues from its last checkpoint with `vaegan train --resume RUN`",
              file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
