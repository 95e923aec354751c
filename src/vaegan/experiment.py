"""A training run as a user asks for it: the trainer plus what surrounds it.

`train` and `resume` own the run folder while they work (its lock, and only files vaegan wrote may be
replaced); at each epoch end they log test-set metrics (and, with `evaluation.quality_classifier`, the samples'
FCD and class consistency) and write the sample and reconstruction grids; at the
finish they write `model.pt` and `summary.json`, last, so that a run killed before them is completed by
`resume`. Figures and test metrics use the EMA generator when `train.ema_decay` > 0. Rank 0 also sends all of it
to the experiment trackers of `train.log_to` (vaegan.tracking).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from vaegan.config import Config, apply_overrides, check_consistency, from_dict, frozen_differences, to_yaml
from vaegan.data import ImageDataset, load_split, sequential_batches
from vaegan.errors import StoppedByAnotherRank, VaeganError
from vaegan.evaluation.quality import QualityProbe
from vaegan.evaluation.reconstruction import evaluate_reconstruction
from vaegan.runs import RunDir, atomic_write
from vaegan.runs.checkpoint import is_count
from vaegan.runs.hardware import describe_hardware
from vaegan.runs.device import select_device
from vaegan.training import Trainer, TrainingEvents, TrainingLeg, distributed
from vaegan.training.distributed import Ranks
from vaegan.training.fused import FusedTrainer
from vaegan.training.fused.trainer import check_fusable
from vaegan.tracking import Trackers, open_trackers, require_trackers
from vaegan.viz import save_sample_grid
from vaegan.viz.figures import first_images, save_reconstructions

RECON_IMAGES = 32  # test images in the per-epoch reconstruction grids


class Experiment(TrainingEvents):
    def __init__(self, cfg: Config, rundir: RunDir, test_set: ImageDataset, trainer: Trainer):
        """`trainer`: the run's Trainer (alone, or a member of a fused group: vaegan.training.fused)."""
        self.cfg, self.rundir, self.test_set, self.trainer = cfg, rundir, test_set, trainer
        trainer.events = self
        self.trackers = Trackers([])  # opened by rank 0 when training starts (open_trackers)
        classifier = cfg.evaluation.quality_classifier
        self.quality_probe = QualityProbe(Path(classifier), test_set, cfg.evaluation.quality_samples,
                                          trainer.device) if classifier and trainer.ranks.main else None

    @classmethod
    def alone(cls, cfg: Config, rundir: RunDir, train_set: ImageDataset, test_set: ImageDataset,
              recorded_speed: dict | None = None, ranks: Ranks = Ranks()) -> Experiment:
        """A run trained by its own Trainer."""
        trainer = Trainer(cfg, rundir, train_set, None, recorded_speed, ranks, data_record(train_set, test_set))
        return cls(cfg, rundir, test_set, trainer)

    # ---- events of the loop --------------------------------------------------------------------------

    def step_end(self, trainer: Trainer, step: int, values: dict[str, float]) -> None:
        self.trackers.scalars("train", step, values)

    def epoch_end(self, trainer: Trainer) -> None:
        self.test()
        self.quality()
        epoch = trainer.position.epoch
        if epoch % self.cfg.train.recon_every == 0 and trainer.ranks.main:
            self.figures(f"epoch_{epoch:03d}")

    # ---- what they do --------------------------------------------------------------------------------

    def test(self) -> dict[str, float]:
        """Test-set reconstruction metrics, logged as a `test` record (models with an encoder; a GAN has none).
        With several ranks each measures its share of the test images and the sums are added up."""
        trainer, ranks = self.trainer, self.trainer.ranks
        if trainer.model.encoder is None:
            return {}
        images = self.cfg.train.eval_images
        subset = self.test_set if images is None else self.test_set.head(images)
        subset = subset.shard(ranks.rank, ranks.world_size)
        batches = sequential_batches(subset, trainer.device, channels_last=trainer.speed.channels_last)
        result = evaluate_reconstruction(trainer.eval_model, batches, self.cfg.loss.beta, self.cfg.loss.reduction,
                                         combine_sums=distributed.total if ranks.distributed else None)
        if not ranks.main:
            return result
        trainer.metrics_log.write(kind="test", step=trainer.position.step, epoch=trainer.position.epoch, **result)
        self.trackers.scalars("test", trainer.position.step, result)
        return result

    def quality(self) -> dict[str, float]:
        """The samples' FCD and class consistency, logged as a `quality` record with the images seen and the
        training seconds so far (with `evaluation.quality_classifier`; rank 0 measures)."""
        if self.quality_probe is None:
            return {}
        pos = self.trainer.position
        result = self.quality_probe.measure(self.trainer.eval_model)
        self.trainer.metrics_log.write(kind="quality", step=pos.step, epoch=pos.epoch,
                                       images=pos.step * self.cfg.train.batch_size, seconds=round(pos.seconds, 2),
                                       **result)
        self.trackers.scalars("quality", pos.step, result)
        return result

    def figures(self, name: str) -> None:
        """Sample grid (fixed z) and, with an encoder, the real-vs-reconstruction grid of the first test images."""
        model, step = self.trainer.eval_model, self.trainer.position.step
        written = [save_sample_grid(model, self.rundir.sample_grid(name), self.test_set.class_names)]
        if model.encoder is not None:
            x, y = first_images(self.test_set, RECON_IMAGES, self.trainer.device)
            written.append(self.rundir.recon_grid(name))
            save_reconstructions(model, x, y, written[-1], f"step {step}")
        for png in written:
            self.trackers.image(png.parent.name, png, step)

    def logged(self, kind: str, step: int) -> dict[str, float] | None:
        """The `kind` record metrics.jsonl holds for `step` (a resumed run may have logged it before it stopped)."""
        logged = [r for r in self.rundir.records() if r.get("kind") == kind and r.get("step") == step]
        return {k: v for k, v in logged[-1].items() if k not in ("kind", "step", "epoch", "time")} if logged else None

    def open_trackers(self) -> None:
        """Start (or continue) the trackers of `train.log_to`, on rank 0 only, for the leg starting after the
        current step. The caller closes them (`self.trackers.close`) however the leg ends."""
        if self.trainer.ranks.main:
            self.trackers = open_trackers(self.cfg, self.rundir, first_step=self.trainer.position.step + 1)

    def run(self, test_first: bool = False) -> dict[str, Any]:
        """Train to the end of the schedule (a new run first logs the untrained model's test metrics:
        `test_first`), then write the final outputs; returns the summary."""
        self.open_trackers()
        finished = False
        try:
            if test_first:
                self.test()
            summary = self.finish(self.trainer.fit())
            finished = True
            return summary
        finally:
            self.trackers.close(finished)

    def finish(self, leg: TrainingLeg) -> dict[str, Any]:
        """Final test metrics (those logged at this step, if any), the final grids, model.pt, then summary.json;
        rank 0 writes them (other ranks help measure and return an empty summary)."""
        trainer, pos = self.trainer, self.trainer.position
        logged = distributed.from_main(self.logged("test", pos.step) if trainer.ranks.main else None, trainer.ranks)
        final = logged if logged is not None else self.test()
        if not trainer.ranks.main:
            return {}
        quality = self.logged("quality", pos.step) if self.quality_probe is not None else None
        quality = quality if quality is not None else self.quality()
        self.figures("final")
        state = trainer.eval_model.state_dict()
        atomic_write(self.rundir.model, lambda f: torch.save(state, f))
        trained_images = leg.steps * self.cfg.train.batch_size
        summary = {"step": pos.step, "epoch": pos.epoch, "test": final, "device": str(trainer.device),
                   "train_images": trainer.train_images,
                   "world_size": trainer.ranks.world_size,
                   "hardware": describe_hardware(trainer.device), "speed": trainer.speed_record,
                   "nonfinite_steps": trainer.nonfinite_steps, "wall_seconds": round(leg.wall_seconds, 2),
                   "train_seconds": round(leg.step_seconds, 2),
                   "images_per_second": round(trained_images / leg.step_seconds, 1) if leg.steps else None}
        if quality:
            summary["quality"] = quality
        if trainer.fused is not None:  # trained fused: with which runs
            summary["fused"] = trainer.fused
        self.rundir.write_json(self.rundir.summary, summary)
        self.trackers.summary(summary)
        return summary


# ---- entry points ------------------------------------------------------------------------------------

def _load_splits(cfg: Config) -> tuple[ImageDataset, ImageDataset]:
    return tuple(load_split(cfg.data, split, cfg.train.seed) for split in ("train", "test"))


def _load_group_splits(cfgs: list[Config]) -> list[tuple[ImageDataset, ImageDataset]]:
    """Each member's splits; members whose data is the same (the usual case: only a train_subset depends on the
    seed) share one read of it, and one fingerprint."""
    def data_of(cfg: Config) -> str:
        return repr((cfg.data, cfg.train.seed if cfg.data.train_subset is not None else None))

    read: dict[str, tuple[ImageDataset, ImageDataset]] = {}
    for cfg in cfgs:
        if data_of(cfg) not in read:
            read[data_of(cfg)] = _load_splits(cfg)
    return [read[data_of(cfg)] for cfg in cfgs]


DATA_SPLITS = {"train": "training", "test": "test"}


def data_record(train_set: ImageDataset, test_set: ImageDataset) -> dict[str, dict[str, Any]]:
    """The image count and content fingerprint of each split a run uses, kept in its checkpoints."""
    return {split: {"images": len(dataset), "sha256": dataset.fingerprint}
            for split, dataset in zip(DATA_SPLITS, (train_set, test_set))}


def _check_same_data(rundir: RunDir, recorded: Any, current: dict[str, dict[str, Any]]) -> None:
    """Refuse to resume on other data than the run started on: a folder that gained images, a replaced file.
    Checkpoints written before runs recorded their data hold none; they resume as before."""
    if recorded is None:
        return
    for split, what in DATA_SPLITS.items():
        then = recorded.get(split) if isinstance(recorded, dict) else None
        if not (isinstance(then, dict) and is_count(then.get("images"))
                and isinstance(then.get("sha256"), str)):
            raise VaeganError(f"{rundir.checkpoint} holds a malformed record of the run's {what} data (data.{split}); "
                              "train a new run")
        now = current[split]
        if then["sha256"] != now["sha256"]:
            raise VaeganError(f"cannot resume {rundir}: its {what} data changed since it started ({then['images']} "
                              f"images then, {now['images']} now; fingerprint {then['sha256'][:12]} then, "
                              f"{now['sha256'][:12]} now); train a new run, or restore the data")


@contextlib.contextmanager
def _process_group(cfg: Config) -> Iterator[Ranks]:
    """The ranks of this run (several under torchrun, else one process), left on every exit path; a rank that
    stops because another failed first raises `StoppedByAnotherRank`, so only the first one reports."""
    ranks = distributed.join_from_environment(select_device(cfg.train.device).type)
    try:
        yield ranks
    except BaseException as err:
        if not distributed.leave(err):
            raise StoppedByAnotherRank() from err
        raise
    distributed.leave()


def _owned(rundir: RunDir, ranks: Ranks, purpose: str):
    """Rank 0 holds the run's lock; the other ranks write nothing there."""
    return rundir.lock(purpose) if ranks.main else contextlib.nullcontext()


def train(cfg: Config, run_dir: Path, overwrite: bool = False) -> dict[str, Any]:
    """Start a new run in `run_dir`. The folder and the data are checked before anything in it is touched, so a
    failure (missing data, a folder holding other files) never destroys an earlier run or a user's files.
    Under torchrun every rank calls this; rank 0 prepares the folder and writes it."""
    rundir = RunDir(run_dir)
    check_consistency(cfg)
    require_trackers(cfg)
    with _process_group(cfg) as ranks:
        if ranks.main:
            rundir.check_new_run(overwrite)
        train_set, test_set = _load_splits(cfg)
        with _owned(rundir, ranks, "vaegan train"):
            if ranks.main:
                rundir.check_new_run(overwrite)  # again, now that no other process can write the folder
                rundir.remove_outputs()
                rundir.write_text(rundir.config, to_yaml(cfg))
            distributed.barrier(ranks)
            experiment = Experiment.alone(cfg, rundir, train_set, test_set, ranks=ranks)
            return experiment.run(test_first=True)


def _resumed_config(rundir: RunDir, overrides: dict[str, Any] | None) -> tuple[Config, dict[str, Any]]:
    """The config a run resumes with (its own, with schedule overrides) and its checkpoint."""
    rundir.require_checkpoint()  # a mistyped path gets no lock file
    payload = rundir.read_checkpoint()
    saved = from_dict(payload["config"], where=f"config stored in {rundir.checkpoint}")
    cfg = apply_overrides(saved, overrides or {})
    changed = frozen_differences(saved, cfg)
    if changed:
        raise VaeganError(f"cannot resume {rundir} with a different {', '.join(changed)}: those keys define the "
                          "experiment; only train.* schedule keys (epochs, max_steps, ckpt_every, ...) and "
                          "data.dir / data.download may change")
    return cfg, payload


def resume(run_dir: Path, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Continue a run from its checkpoint; only schedule keys (and where the data lives, not what it holds) may
    change. A run that reached its last step but was stopped before writing model.pt and summary.json gets them
    written. Under torchrun every rank calls this, with as many ranks as the run was trained with."""
    rundir = RunDir(run_dir)
    cfg, payload = _resumed_config(rundir, overrides)
    require_trackers(cfg)
    with _process_group(cfg) as ranks:
        with _owned(rundir, ranks, "vaegan train --resume"):
            payload = rundir.read_checkpoint()  # again, under the lock
            train_set, test_set = _load_splits(cfg)
            _check_same_data(rundir, payload.get("data"), data_record(train_set, test_set))
            experiment = Experiment.alone(cfg, rundir, train_set, test_set, recorded_speed=payload.get("speed"),
                                          ranks=ranks)
            experiment.trainer.restore(payload)
            trainer = experiment.trainer
            if trainer.position.step >= trainer.total_steps and rundir.outputs_status(trainer.position.step).complete:
                raise VaeganError(f"{rundir} already finished its {trainer.total_steps} steps; extend it with "
                                  "train.max_steps=N or train.epochs=N")
            if ranks.main:
                rundir.write_text(rundir.config, to_yaml(cfg))
            return experiment.run()


def train_fused(cfgs: list[Config], run_dirs: list[Path], resume_overrides: dict[str, Any] | None = None
                ) -> list[dict[str, Any] | VaeganError]:
    """Train runs whose configs share a fuse key (vaegan.training.fused) as one fused group, each into its own
    folder: all new (`cfgs`), or, with `resume_overrides` (schedule keys, as `resume` takes), all resumed from
    checkpoints at one step (`cfgs` is then ignored). Returns each run's summary, or the error that ended it (a
    run that diverged ends FAILED while the others finish)."""
    rundirs = [RunDir(path) for path in run_dirs]
    resuming = resume_overrides is not None
    if not rundirs or (not resuming and len(cfgs) != len(rundirs)):
        raise VaeganError(f"a fused group needs one run folder per config, at least one: got {len(rundirs)} "
                          f"folder(s) for {len(cfgs)} config(s)")
    if resuming:
        cfgs, payloads = map(list, zip(*(_resumed_config(rundir, resume_overrides) for rundir in rundirs)))
    for cfg in cfgs:
        check_consistency(cfg)
        require_trackers(cfg)
    if not resuming:
        for rundir in rundirs:
            rundir.check_new_run(False)
    with contextlib.ExitStack() as held:
        for rundir in rundirs:
            held.enter_context(rundir.lock("vaegan fused training"))
        splits = _load_group_splits(cfgs)
        check_fusable(cfgs, [train for train, _ in splits])
        records = [data_record(*split) for split in splits]
        if resuming:
            payloads = [rundir.read_checkpoint() for rundir in rundirs]  # again, under the locks
            for rundir, payload, record in zip(rundirs, payloads, records):
                _check_same_data(rundir, payload.get("data"), record)
        else:
            for rundir, cfg in zip(rundirs, cfgs):
                rundir.check_new_run(False)
                rundir.remove_outputs()
                rundir.write_text(rundir.config, to_yaml(cfg))
        group = FusedTrainer(cfgs, rundirs, [train for train, _ in splits], records,
                             [p.get("speed") for p in payloads] if resuming else None)
        experiments = [Experiment(cfg, rundir, test, trainer)
                       for cfg, rundir, (_, test), trainer in zip(cfgs, rundirs, splits, group.trainers)]
        if resuming:
            group.restore(payloads)
            for rundir, cfg in zip(rundirs, cfgs):
                rundir.write_text(rundir.config, to_yaml(cfg))
        finished = False
        try:
            for experiment in experiments:
                experiment.open_trackers()
                if not resuming:
                    experiment.test()
            try:
                leg = group.fit()
            except VaeganError:
                if group.live:
                    raise
                return [VaeganError(why) for why in group.failed]
            results = [VaeganError(why) if why else experiment.finish(leg)
                       for experiment, why in zip(experiments, group.failed)]
            finished = True
            return results
        finally:
            for experiment, why in zip(experiments, group.failed):
                experiment.trackers.close(finished and not why)
