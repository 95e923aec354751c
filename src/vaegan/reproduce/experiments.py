"""The two reference experiments as `vaegan reproduce` runs them: which runs, grids and measurements each
needs, and the numbers behind every claim. Everything lands under OUT/<experiment>/ through the ablation
runner, so a killed reproduction continues where it stopped: finished cells are read, partial ones resumed,
the classifier file and eval.json are reused.
"""

from __future__ import annotations

import logging
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from vaegan.ablation import MEASURE_IMAGES
from vaegan.ablation.grids import Grid, baselines_grid, regularization_grid
from vaegan.ablation.runner import Cell, Executor, SuiteOptions, budget_steps, run_grid
from vaegan.ablation.table import write_tables
from vaegan.config import apply_overrides, load_preset
from vaegan.data import OWN_DATA, load_split, sequential_batches
from vaegan.errors import VaeganError
from vaegan.evaluation.classifier import ClassifierConfig, train_classifier
from vaegan.evaluation.inception import INCEPTION_WEIGHTS
from vaegan.evaluation.reconstruction import evaluate_reconstruction
from vaegan.evaluation.run import LoadedRun, load_run
from vaegan.evaluation.suite import evaluate
from vaegan.models import evaluation_mode
from vaegan.objectives.feature_networks import load_classifier, read_given_classifier
from vaegan.runs import OutputFolder, RunDir
from vaegan.reproduce import EXPERIMENT_NAMES
from vaegan.reproduce import claims as c
from vaegan.runs.cache import cache_dir
from vaegan.viz.report import run_figures

log = logging.getLogger(__name__)

BATCH_IMAGES = 16  # the reference's "reconstruction MSE on a batch": the first 16 test images
COLOUR_IMAGES = 256
SMALL_DATA_SEEDS = 2
SMALL_DATA_TESTS = 100  # test-set evaluations per small-data run


@dataclass
class Options:
    out: Path
    budget: float  # of the references' 20-epoch schedules
    seeds: int
    classifiers: list[Path]  # `vaegan classifier train` files; each experiment uses the one of its dataset
    device: str
    overrides: dict[str, Any]  # applied to every run (e.g. data.name=shapes10 for a stand-in)
    subset: int  # training images of the small-data comparison
    executor: Executor | None = None
    fuse: str = "auto"  # cells that can train fused do (see vaegan.ablation.runner)
    measure_images: int = MEASURE_IMAGES  # samples and test images per metric and per grid cell


@dataclass
class Outcome:
    """What the report shows of one experiment."""

    name: str
    title: str
    findings: list[c.Finding]
    facts: list[str] = field(default_factory=list)  # budget, classifier accuracy, what a stand-in changes
    figures: list[tuple[Path, str]] = field(default_factory=list)
    tables: list[Path] = field(default_factory=list)


REFERENCE_DATASETS = {"cifar100-vaegan": "cifar100", "cifar10-regularization": "cifar10"}


def classifier_data(experiment: str, options: Options) -> dict[str, Any]:
    """The data overrides of an experiment's metrics classifier: its reference's dataset, or the stand-in the
    overrides name."""
    return _dataset_overrides({"data.name": REFERENCE_DATASETS[experiment], **options.overrides})


def _dataset_name(cfg: ClassifierConfig) -> str:
    """The name a classifier trained on `cfg.data` records: own data is named by its files, so it is read."""
    if cfg.data.name in OWN_DATA:
        return load_split(cfg.data, "train", cfg.train.seed).name
    return cfg.data.name


def _given_classifiers(options: Options) -> list[tuple[Path, dict[str, Any]]]:
    """The --classifier files with their records."""
    return [(given, read_given_classifier(given)) for given in options.classifiers]


def check_classifiers(experiments: list[str], options: Options) -> None:
    """Refuse a --classifier file that none of `experiments` can use (trained on another dataset) before any
    work starts, rather than train or use another one in its place."""
    given = _given_classifiers(options)
    if not given:
        return  # nothing to match: own data is not read to name it
    needed = {experiment: _dataset_name(apply_overrides(ClassifierConfig(), classifier_data(experiment, options)))
              for experiment in experiments}
    for path, info in given:
        if info["dataset"] not in needed.values():
            wanted = ", ".join(f"{dataset} ({experiment})" for experiment, dataset in needed.items())
            raise VaeganError(f"--classifier {path} was trained on {info['dataset']}, but the experiment(s) run "
                              f"here need a classifier of {wanted}; pass one trained on that, or none")


def metrics_classifier(dataset_overrides: dict[str, Any], options: Options) -> tuple[Path, dict[str, Any]]:
    """The classifier behind FCD, class consistency and diversity: the given file trained on the experiment's
    dataset, else OUT/classifier-DATASET.pt, trained there (at the budget's share of its schedule) when missing."""
    cfg = apply_overrides(ClassifierConfig(), dataset_overrides)
    given = _given_classifiers(options)
    dataset = _dataset_name(cfg) if given else None  # own data is read to name it only when there is a match to find
    for path, info in given:
        if info["dataset"] == dataset:
            return path, info
    path = options.out / f"classifier-{cfg.data.name}.pt"
    if path.is_file():
        return path, load_classifier(path, torch.device("cpu"))[1]
    train_set, test_set = (load_split(cfg.data, split, cfg.train.seed) for split in ("train", "test"))
    steps = max(1, round(options.budget * cfg.train.epochs * (len(train_set) // cfg.train.batch_size)))
    log.info(f"training the metrics classifier on {cfg.data.name} for {steps} steps into {path} (pass "
                f"--classifier with a fully trained one for meaningful classifier metrics)")
    cfg = apply_overrides(cfg, {"train.max_steps": steps, "train.device": options.device})
    return path, train_classifier(cfg, train_set, test_set, path)


def _classifier_fact(path: Path, info: dict[str, Any]) -> str:
    return (f"metrics classifier: {path} ({info['dataset']}, test accuracy {info['test_accuracy']:.1%}"
            + (f", trained in {info['train_seconds']} s" if "train_seconds" in info else "") + ")")


def _dataset_overrides(overrides: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in overrides.items() if k.startswith("data.") and k != "data.train_subset"}


def _suite(classifier: Path, options: Options) -> SuiteOptions:
    inception = INCEPTION_WEIGHTS.present(None, cache_dir())
    return SuiteOptions(classifier, str(inception) if inception else None, options.measure_images)


def _grid(grid: Grid, out: Path, options: Options, suite: SuiteOptions, seeds: int, budget: float | None,
          overrides: dict[str, Any]) -> tuple[list[Cell], list[Path]]:
    cells, budget_line = run_grid(grid, out, seeds, budget, overrides, options.device, suite,
                                  options.executor, options.fuse)
    tables = write_tables(grid, cells, out, budget_line)
    failed = [cell for cell in cells if cell.error]
    if failed:
        raise VaeganError(f"{len(failed)} of {len(cells)} cells of {out} failed (listed in its tables; rerun to "
                          f"retry them): {failed[0].variant} seed {failed[0].seed}: {failed[0].error}")
    return cells, [tables["md"]]


def _evaluation(run: LoadedRun, metrics: list[str], suite: SuiteOptions) -> dict[str, Any]:
    """The metrics of the run's evaluation record (`vaegan evaluate`) at its current step and image count,
    computed only where missing."""
    if run.rundir.eval.is_file():
        record = run.rundir.read_json(run.rundir.eval)
        done = set(record["metrics"]) | set(record["skipped"])
        if (record.get("step"), record.get("n")) == (run.step, suite.images) and set(metrics) <= done:
            return record["metrics"]
    wanted = metrics + (["fid", "kid", "is"] if suite.inception_weights else [])
    return evaluate(run, wanted, suite.images, 0, suite.inception_weights, suite.classifier)["metrics"]


def _cell(cells: list[Cell], variant: str, seed: int = 0) -> Cell:
    return next(cell for cell in cells if cell.variant == variant and cell.seed == seed)


def _per_seed(cells: list[Cell], variant: str, column: str) -> list[float]:
    return [cell.values[column] for cell in sorted(cells, key=lambda cell: cell.seed) if cell.variant == variant]


def mse_readings(mse: float) -> list[c.Reading]:
    """A per-pixel MSE on [-1, 1], read the three ways the reference's numbers could mean."""
    return [c.Reading("per-pixel MSE on [-1, 1]", mse), c.Reading("per-pixel MSE on [0, 1]", mse / 4),
            c.Reading("per-image sum on [-1, 1]", mse * 3 * 32 * 32)]


def batch_mse(run: LoadedRun) -> float:
    """The reference's 'reconstruction MSE on a batch': per-pixel MSE of the first 16 test images."""
    batch = run.dataset("test").head(BATCH_IMAGES)
    return evaluate_reconstruction(run.model, sequential_batches(batch, run.device), 0.0, "mean")["mse_per_pixel"]


def colour_and_alignment(run: LoadedRun) -> tuple[float, float]:
    """Mean absolute difference of per-image channel means (on [0, 1]) between test images and their
    reconstructions, and the mean per-image Pearson correlation of their luma (object placement)."""
    colour, correlation = [], []
    with evaluation_mode(run.model), torch.inference_mode():
        for x, y in sequential_batches(run.dataset("test").head(COLOUR_IMAGES), run.device):
            x_hat = run.model(x, y)[0].float()
            colour.append(((x.mean((2, 3)) - x_hat.mean((2, 3))).abs().mean(1) / 2).cpu())
            a, b = (v.mean(1).flatten(1) for v in (x, x_hat))
            a, b = a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True)
            correlation.append(((a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1)).clamp_min(1e-12)).cpu())
    return float(torch.cat(colour).mean()), float(torch.cat(correlation).mean())


def cifar100_vaegan(options: Options) -> Outcome:
    """The conditional VAE-GAN on CIFAR-100 with its VAE-only and GAN-only baselines and the `-plus` preset."""
    out = options.out / "cifar100-vaegan"
    classifier, info = metrics_classifier(classifier_data("cifar100-vaegan", options), options)
    suite = _suite(classifier, options)
    cells, tables = _grid(baselines_grid(), out, options, suite, options.seeds, options.budget, options.overrides)
    run = load_run(_cell(cells, "cvaegan-cifar100").run_dir, options.device)
    vae = load_run(_cell(cells, "vae-cifar100").run_dir, options.device)
    metrics = _evaluation(run, ["recon", "latent", "sharp", "smooth", "fcd", "cc", "pr", "div"], suite)
    vae_sharp = _evaluation(vae, ["sharp"], suite)["sharp"]
    records, summary = run.rundir.records(), run.rundir.read_json(run.rundir.summary)
    mse = c.epoch_means(records, "mse_per_pixel")
    chance = 1 / max(run.model.num_classes, 1)
    colour, alignment = colour_and_alignment(run)
    recon_readings = mse_readings(mse[-1] if mse else float("nan"))
    findings = [
        c.decreases_slowly("KL slowly decreases", c.epoch_means(records, "kl")),
        c.stable_in_band("Reconstruction loss stable around 0.39-0.43", recon_readings, "per-pixel MSE on [-1, 1]",
                         0.39, 0.43, mse),
        c.falls_from_to("D loss falls from ~2.6 to ~1.1", c.epoch_means(records, "d_loss"), 2.6, 1.1),
        c.oscillates_between("G loss oscillates between 5 and 8",
                             {"G adversarial loss (gan)": c.epoch_means(records, "gan"),
                              "E/G objective (loss)": c.epoch_means(records, "loss")},
                             "G adversarial loss (gan)", 5, 8),
        c.at_least("No mode collapse", "sample spread / real spread per class (div)",
                   metrics.get("div", {}).get("value"), 0.5),
        c.no_divergence("No divergence", summary["nonfinite_steps"], c.epoch_means(records, "loss")),
        c.stable_after("Stable after ~5 epochs up to 20", c.epoch_means(records, "loss")),
        c.at_least("Rows of the class grid differ by class", "class consistency of samples (cc)",
                   metrics.get("cc", {}).get("value"), 2 * chance, f" (twice chance, 1/{round(1 / chance)})"),
        c.at_least("... and vary within a row", "spread of the least varied class (div lowest_class)",
                   metrics.get("div", {}).get("lowest_class"), 0.25),
        c.at_most("Reconstructions match colour distributions", "mean |channel mean difference| on [0, 1]",
                  colour, 0.05, f" (first {COLOUR_IMAGES} test images)"),
        c.at_least("... and roughly align objects", "mean luma correlation of image and reconstruction",
                   alignment, 0.5),
        c.near_value("Reconstruction MSE on a batch 0.4103", mse_readings(batch_mse(run)),
                     "per-pixel MSE on [-1, 1]", 0.4103),
        c.at_most("Interpolations smooth, no abrupt jumps", "largest / mean step, worst of the paths (smooth)",
                  metrics["smooth"]["max_step_ratio"], 3.0),
        c.at_least("The latent space is organised by class", "5-NN accuracy of test means (latent)",
                   metrics["latent"]["knn_accuracy"], 2 * chance, f" (twice chance, 1/{round(1 / chance)})"),
        c.at_least("VAE-GAN sharper than VAE-only", "sample sharpness ratio VAE-GAN / VAE-only (sharp)",
                   metrics["sharp"]["ratio"] / vae_sharp["ratio"], 1.0),
    ]
    facts = [_classifier_fact(classifier, info),
             f"main run: {run.run_dir} at step {run.step} ({summary.get('epoch')} epochs)"]
    figures = _figures(run, out)
    return Outcome("cifar100-vaegan", "Conditional VAE-GAN on CIFAR-100", findings, facts, figures, tables)


def _figures(run: LoadedRun, out: Path) -> list[tuple[Path, str]]:
    """The main run's figures in OUT/.../figures, where PNGs vaegan did not write are never overwritten."""
    folder, figures = OutputFolder(out), RunDir(out).figures
    folder.check(*figures.glob("*.png"))
    written = run_figures(run, figures)
    folder.record(*(path for path, _ in written))
    return written


def _most_important_left_out(cells: list[Cell]) -> str:
    """The all-but-one variant whose test MSE moves furthest from `all`'s: the regulariser that matters most."""
    reference = statistics.fmean(_per_seed(cells, "all", "test_mse"))
    left_out = {cell.variant for cell in cells if cell.variant.startswith("all-")}
    return max(sorted(left_out), key=lambda v: abs(statistics.fmean(_per_seed(cells, v, "test_mse")) - reference))


def _losses(run_dir: Path) -> tuple[list[float], list[float]]:
    """Per-epoch mean train loss and the test loss of each epoch end."""
    records = RunDir(run_dir).records()
    test = [r["loss"] for r in records if r.get("kind") == "test" and isinstance(r.get("loss"), (int, float))]
    return c.epoch_means(records, "loss"), test


def cifar10_regularization(options: Options) -> Outcome:
    """The regularisation grid on CIFAR-10, and none / all / the most important all-but-one on a small subset,
    where an unregularised model overfits within the budget."""
    out = options.out / "cifar10-regularization"
    grid = regularization_grid()
    classifier, info = metrics_classifier(classifier_data("cifar10-regularization", options), options)
    suite = _suite(classifier, options)
    cells, tables = _grid(grid, out / "full", options, suite, options.seeds, options.budget, options.overrides)
    steps = budget_steps(apply_overrides(load_preset("vae-cifar10"), options.overrides), options.budget)
    chosen = _most_important_left_out(cells)
    small = Grid("small-data", [v for v in grid.variants if v.name in ("none", "all", chosen)])
    # an epoch of the subset is ~2 steps: test metrics about 100 times per run, enough to see the minimum
    small_overrides = {**options.overrides, "data.train_subset": options.subset, "train.max_steps": steps,
                       "train.eval_images": min(1000, options.subset), "train.recon_every": 10,
                       "train.epoch_work_steps": max(1, steps // SMALL_DATA_TESTS)}
    small_cells, small_tables = _grid(small, out / "small-data", options, suite,
                                      max(options.seeds, SMALL_DATA_SEEDS), None, small_overrides)
    sharp = {variant: [_evaluation(load_run(cell.run_dir, options.device), ["sharp"], suite)["sharp"][
        "reconstruction_ratio"] for cell in sorted(cells, key=lambda cell: cell.seed) if cell.variant == variant]
        for variant in ("all", "none")}
    train_losses, test_losses = _losses(_cell(small_cells, "none").run_dir)
    overfit = c.overfits(train_losses, test_losses)
    paired = {column: (_per_seed(cells, "all", column), _per_seed(cells, "none", column))
              for column in ("test_mse", "kl", "loss_std", "knn")}
    less_overfitting = c.better_in("Less overfitting", "test - train MSE on the small subset",
                                   _per_seed(small_cells, "all", "gap"), _per_seed(small_cells, "none", "gap"),
                                   "all", "none")
    if not overfit:
        less_overfitting = c.Finding(less_overfitting.claim, less_overfitting.measured + "; but `none` did not "
                                     "visibly overfit (test loss rising while train loss falls)", c.NOT_TESTABLE,
                                     less_overfitting.rule + "; testable only where `none` visibly overfits")
    findings = [
        c.better_in("With regularisation, lower reconstruction loss", "test MSE per pixel", *paired["test_mse"],
                    "all", "none"),
        c.better_in("KL more controlled", "test KL", *paired["kl"], "all", "none"),
        less_overfitting,
        c.better_in("More stable training", "loss std over the last 20% of steps", *paired["loss_std"],
                    "all", "none"),
        c.better_in("Sharper (and more accurate: see the first row) reconstructions",
                    "reconstruction sharpness ratio", sharp["all"], sharp["none"], "all", "none", lower=False),
        c.better_in("More structured latent space", "5-NN accuracy of test means", *paired["knn"], "all", "none",
                    lower=False),
    ]
    facts = [_classifier_fact(classifier, info),
             f"small-data comparison: {options.subset} training images, {steps} steps, variants none, all, "
             f"{chosen} (the all-but-one that moves test MSE most); `none` "
             + ("overfits" if overfit else "does not visibly overfit") + " there"]
    return Outcome("cifar10-regularization", "Regularised beta-VAE on CIFAR-10", findings, facts, [],
                   tables + small_tables)


EXPERIMENTS: dict[str, Callable[[Options], Outcome]] = dict(
    zip(EXPERIMENT_NAMES, (cifar100_vaegan, cifar10_regularization), strict=True))
