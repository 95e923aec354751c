"""Run every (variant, seed) cell of a grid as a normal run directory, then measure it.

A finished cell is only read, an interrupted one resumed, so stopping `vaegan ablate` and starting it again
loses nothing. Every cell gets the same budget (steps), batch size and, per seed, the same data order.

With `fuse="auto"` the cells trained in this process whose configs build the same tensor shapes (the seeds of a
variant, variants that differ in values only) train as one fused group (vaegan.training.fused): one model,
one step for all, each cell still its own run folder with its own numbers.
"""

from __future__ import annotations

import logging
import math
import statistics
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vaegan.ablation import FUSE_CHOICES, MEASURE_IMAGES
from vaegan.ablation.grids import Grid
from vaegan.config import Config, apply_overrides, from_dict
from vaegan.data import load_split, sequential_batches
from vaegan.data.registry import OWN_DATA
from vaegan.errors import VaeganError
from vaegan.evaluation.classifier import check_matches
from vaegan.evaluation.latent import KNN_K, encode_means, knn_accuracy
from vaegan.evaluation.reconstruction import evaluate_reconstruction
from vaegan.evaluation.run import LoadedRun, load_run
from vaegan.evaluation.suite import Evaluation
from vaegan.experiment import resume, train, train_fused
from vaegan.objectives.feature_networks import read_given_classifier
from vaegan.runs import RunDir
from vaegan.runs.cache import cache_dir
from vaegan.training.fused.trainer import fuse_key

log = logging.getLogger(__name__)

STABILITY_TAIL = 0.2  # the last 20% of the steps
SUITE_COLUMNS = {"fcd": ("fcd", "value"), "fcd_floor": ("fcd", "real_vs_real_floor"),
                 "fcd_intra": ("fcd", "intra_class"), "cc": ("cc", "value"), "div": ("div", "value"),
                 "sharp": ("sharp", "ratio"), "sharp_recon": ("sharp", "reconstruction_ratio"),
                 "fid": ("fid", "value")}  # table column -> (eval.json metric, its field), where the run has it


@dataclass(frozen=True)
class SuiteOptions:
    """What the evaluation suite may use: a classifier (FCD, class consistency) and Inception weights (FID), and
    on how many images (and samples) each cell is measured: fewer make a quick smoke run, with noisier numbers."""
    classifier: Path | None = None
    inception_weights: str | None = None
    images: int = MEASURE_IMAGES


def check_measure_images(images: int) -> None:
    """Refuses, before any cell trains, an image count too small for the measures every cell reports."""
    if images <= KNN_K:
        raise VaeganError(f"--measure-images {images}: each cell's latent {KNN_K}-NN accuracy needs more than "
                          f"{KNN_K} test images; give {KNN_K + 1} or more")


@dataclass
class Cell:
    variant: str
    seed: int
    run_dir: Path
    values: dict[str, float]
    error: str | None = None  # why the cell failed; its values are then empty


@dataclass(frozen=True)
class CellJob:
    """Everything a process needs to bring one cell to its budget and measure it."""

    variant: str
    seed: int
    config: dict[str, Any]  # Config.to_dict()
    run_dir: Path
    steps: int
    suite: SuiteOptions


def budget_steps(cfg: Config, fraction: float) -> int:
    """`fraction` of the preset's schedule (its epochs over its training split), in steps."""
    train_size = len(load_split(cfg.data, "train", cfg.train.seed))
    return max(1, round(fraction * cfg.train.epochs * (train_size // cfg.train.batch_size)))


def run_cell(cfg: Config, run_dir: Path, steps: int) -> None:
    """Bring the cell to `steps` steps with complete outputs: nothing if it is there, else resume it (which also
    completes a run stopped between its last checkpoint and its summary), else start it."""
    status = RunDir(run_dir).status()
    if status.finished(steps):
        return
    if status.step is not None:
        resume(run_dir, {"train.max_steps": max(steps, status.step)})
    else:
        train(apply_overrides(cfg, {"train.max_steps": steps}), run_dir)


def training_values(run: LoadedRun, images: int) -> dict[str, float]:
    """Reconstruction, KL, generalisation gap, latent kNN and stability of a finished run."""
    summary = run.rundir.read_json(run.rundir.summary)
    losses = [r["loss"] for r in run.rundir.records()
              if r.get("kind") == "train" and isinstance(r.get("loss"), (int, float))]
    tail = losses[-max(2, math.ceil(STABILITY_TAIL * len(losses))):]
    values: dict[str, float] = {"loss_std": statistics.stdev(tail) if len(tail) > 1 else 0.0,
                                "nonfinite": summary["nonfinite_steps"], "wall_seconds": summary["wall_seconds"]}
    if summary["images_per_second"] is not None:  # None when the last leg only completed the outputs
        values["images_per_second"] = summary["images_per_second"]
    if run.model.encoder is not None:
        splits = {split: run.dataset(split).head(images) for split in ("train", "test")}
        train_eval, test_eval = (evaluate_reconstruction(run.model, sequential_batches(splits[s], run.device), 1.0,
                                                         "sum") for s in ("train", "test"))
        values.update(train_mse=train_eval["mse_per_pixel"], test_mse=test_eval["mse_per_pixel"],
                      gap=test_eval["mse_per_pixel"] - train_eval["mse_per_pixel"], kl=test_eval["kl"],
                      test_nelbo=test_eval["loss"],
                      knn=knn_accuracy(encode_means(run.model, splits["test"], run.device), splits["test"].labels))
    return values


def suite_values(run: LoadedRun, suite: SuiteOptions) -> dict[str, float]:
    """With a classifier: FCD (with its real-vs-real floor and, conditional models, intra-class FCD), class
    consistency, diversity and sharpness; with Inception weights FID; on `suite.images` samples each."""
    metrics = ["fcd", "cc", "div", "sharp"] if suite.classifier else []
    if suite.inception_weights:
        metrics.append("fid")
    record = Evaluation(run, suite.images, 0, suite.inception_weights, suite.classifier, cache_dir()).run_all(metrics)
    if "fcd" in record["skipped"] or "fid" in record["skipped"]:
        raise VaeganError(record["skipped"].get("fcd") or record["skipped"]["fid"])
    results = record["metrics"]
    return {column: results[metric][key] for column, (metric, key) in SUITE_COLUMNS.items()
            if key in results.get(metric, {})}


def measure(run_dir: Path, device: str, suite: SuiteOptions | None = None) -> dict[str, float]:
    """The table's numbers for one finished run, cached in RUN/ablation.json with the step and the image count
    they measured (a cell trained further, or measured on another count, is measured again); suite metrics
    missing from the cache (a classifier or Inception weights given later) are added to it."""
    suite = suite or SuiteOptions()
    rundir = RunDir(run_dir)
    step = rundir.read_json(rundir.summary)["step"]  # run_cell left the outputs complete: the checkpoint's step
    try:
        cached = rundir.read_json(rundir.ablation) or {}
    except VaeganError:
        cached = {}  # a damaged cache is measured again
    same = cached.get("step") == step and cached.get("images", MEASURE_IMAGES) == suite.images
    values = cached.get("values") if same else {}
    if not isinstance(values, dict):
        values = {}  # a damaged cache is measured again
    wanted_suite = (suite.classifier and "fcd" not in values) or (suite.inception_weights and "fid" not in values)
    if values and not wanted_suite:
        return values  # without opening the run: a table of finished cells is only read
    run = load_run(run_dir, device)
    values = values or training_values(run, suite.images)
    if wanted_suite:
        values.update(suite_values(run, suite))
    rundir.write_json(rundir.ablation, {"step": run.step, "images": suite.images, "values": values})
    return values


def _cell_config(job: CellJob, device: str) -> Config:
    cfg = from_dict(job.config)
    return cfg if device == "auto" else apply_overrides(cfg, {"train.device": device})


def train_and_measure(job: CellJob, device: str) -> dict[str, float]:
    """One cell, start to numbers, on `device` (a pool worker's slot, or the --device of a sequential run)."""
    run_cell(_cell_config(job, device), job.run_dir, job.steps)
    return measure(job.run_dir, device, job.suite)


def fused_groups(jobs: list[CellJob]) -> list[list[CellJob]]:
    """The cells in groups that can train fused (one fuse key and one budget), in the order of their first cell."""
    groups: dict[tuple, list[CellJob]] = {}
    sizes: dict[str, tuple[int, int]] = {}  # a data config's train split: (images, classes), read once
    for job in jobs:
        cfg = from_dict(job.config)
        data = repr(cfg.data)
        if data not in sizes:
            try:
                train_set = load_split(cfg.data, "train", cfg.train.seed)
            except VaeganError:  # a cell whose data cannot be read trains alone, and fails as its own
                groups[(job.run_dir,)] = [job]
                continue
            sizes[data] = (len(train_set), train_set.num_classes)
        groups.setdefault((fuse_key(cfg, *sizes[data]), job.steps), []).append(job)
    return list(groups.values())


def train_and_measure_group(jobs: list[CellJob], device: str) -> dict[Path, tuple[dict[str, float], str | None]]:
    """Cells of one fused group, start to numbers: the finished ones are only measured, the new ones train as one
    group, the interrupted ones resume as one group per checkpoint step; a cell that fails (its run diverged,
    its folder refused) is kept as failed and the others go on."""
    if len(jobs) == 1:
        return {jobs[0].run_dir: _attempt(train_and_measure, jobs[0], device)}
    errors: dict[Path, str] = {}
    legs: dict[int | None, list[CellJob]] = {}
    for job in jobs:
        rundir = RunDir(job.run_dir)
        try:  # a cell whose folder or checkpoint is refused fails alone, before the group starts
            status = rundir.status()
            if status.step is None:
                rundir.check_new_run(False)
        except VaeganError as err:
            errors[job.run_dir] = str(err)
            continue
        if not status.finished(job.steps):
            legs.setdefault(status.step, []).append(job)
    for step, leg in legs.items():
        try:
            if step is None:
                cfgs = [apply_overrides(_cell_config(job, device), {"train.max_steps": job.steps}) for job in leg]
                outcomes = train_fused(cfgs, [job.run_dir for job in leg])
            else:
                outcomes = train_fused([], [job.run_dir for job in leg], {"train.max_steps": max(leg[0].steps, step)})
        except VaeganError as err:
            outcomes = [err] * len(leg)
        errors.update({job.run_dir: str(outcome) for job, outcome in zip(leg, outcomes)
                       if isinstance(outcome, VaeganError)})
    return {job.run_dir: ({}, errors[job.run_dir]) if job.run_dir in errors
            else _attempt(measure, job.run_dir, device, job.suite) for job in jobs}


def _attempt(work: Callable, *args) -> tuple[dict[str, float], str | None]:
    """(values, None), or ({}, why) when `work` ends in a VaeganError."""
    try:
        return work(*args), None
    except VaeganError as err:
        return {}, str(err)


def plan_grid(grid: Grid, out: Path, seeds: int, budget: float | None, overrides: dict[str, Any],
              suite: SuiteOptions | None = None) -> tuple[list[CellJob], str]:
    """Every (variant, seed) cell with its budget in steps, and a line saying which budget that is."""
    jobs, budget_line = [], ""
    for variant in grid.variants:
        for seed in range(seeds):
            cfg = variant.config({**grid.overrides, **overrides, "train.seed": seed})
            steps = budget_steps(cfg, budget) if budget else cfg.train.max_steps or budget_steps(cfg, 1.0)
            budget_line = (f"budget: {budget:g} of each preset's schedule = {steps} steps of batch "
                           f"{cfg.train.batch_size}" if budget else f"budget: {steps} steps of batch "
                           f"{cfg.train.batch_size} (the full schedule or train.max_steps)")
            jobs.append(CellJob(variant.name, seed, cfg.to_dict(), out / variant.name / f"seed{seed}", steps,
                                suite or SuiteOptions()))
    return jobs, budget_line


Executor = Callable[[list[CellJob], Callable], Iterator[tuple[CellJob, dict | None, str | None]]]


def check_classifier(classifier: Path | None, jobs: list[CellJob]) -> None:
    """Refuse a classifier file that is missing, damaged or trained on another dataset than the cells' before
    any cell trains, rather than in each cell after its training. Own data is named by its files, which only the
    cells read, so they check it."""
    if classifier is None:
        return
    info = read_given_classifier(classifier)
    for dataset in sorted({job.config["data"]["name"] for job in jobs} - set(OWN_DATA)):
        check_matches(info, dataset, classifier)


def run_grid(grid: Grid, out: Path, seeds: int, budget: float | None, overrides: dict[str, Any],
             device: str = "auto", suite: SuiteOptions | None = None, executor: Executor | None = None,
             fuse: str = "auto") -> tuple[list[Cell], str]:
    """Train and measure every cell, in this process (fused groups with `fuse="auto"`, else one after another),
    or through `executor` (a process pool, see pool.py, or a cluster, see cluster.py, one cell per job); a cell
    that fails is kept as failed and the others go on. Returns the cells in grid order and the budget line."""
    if fuse not in FUSE_CHOICES:
        raise VaeganError(f"unknown fuse setting {fuse!r}; choose one of {', '.join(FUSE_CHOICES)}")
    suite = suite or SuiteOptions()
    check_measure_images(suite.images)
    jobs, budget_line = plan_grid(grid, out, seeds, budget, overrides, suite)
    check_classifier(suite.classifier, jobs)
    results: dict[Path, tuple[dict, str | None]] = {}
    if executor is not None:
        for job, values, error in executor(jobs, train_and_measure):
            log.info("%s seed %d: %s (%s)", job.variant, job.seed, f"failed: {error}" if error else "done", job.run_dir)
            results[job.run_dir] = (values or {}, error)
    else:
        for group in fused_groups(jobs) if fuse == "auto" else [[job] for job in jobs]:
            names = ", ".join(f"{job.variant} seed {job.seed}" for job in group)
            log.info("%s: %s", f"fused ({len(group)} runs): {names}" if len(group) > 1 else names,
                     ", ".join(str(job.run_dir) for job in group))
            results.update(train_and_measure_group(group, device))
            for job in group:
                if results[job.run_dir][1]:
                    log.warning("%s seed %d failed: %s", job.variant, job.seed, results[job.run_dir][1])
    cells = [Cell(job.variant, job.seed, job.run_dir, *results[job.run_dir]) for job in jobs]
    return cells, budget_line
