"""The training loop: seeded, logged, checkpointed, and resumable bit-exactly on CPU.

The trainer runs steps, writes one `train` record per step to metrics.jsonl, checkpoints every
`train.ckpt_every` steps, at epoch ends (at most one per `train.epoch_work_steps` steps) and at the finish, and
tells its `TrainingEvents` when a step or such an epoch ends. What happens then (test metrics, figures, TensorBoard, the summary) is the experiment's business
(vaegan/experiment.py): training knows no figures.

The loop never waits for the device between flushes: a step's logged values and its non-finite flag stay
device tensors until every `train.log_every` steps (and before each checkpoint and epoch end), when all the
pending records come to the host in one transfer. A step whose loss or gradient is not finite updates nothing
and is counted (`nonfinite_steps` in the metrics); `train.max_nonfinite` of them in a row stop the run at the
flush that sees them, with the last good checkpoint untouched (no checkpoint is written while a streak lasts).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import torch

from vaegan.config import Config, check_consistency
from vaegan.data import BatchLoader, ImageDataset
from vaegan.errors import VaeganError
from vaegan.models import GenerativeModel
from vaegan.runs import RunDir
from vaegan.runs import checkpoint as ckpt
from vaegan.runs.device import select_device
from vaegan.speed import configure_process, run_speed, speed_record
from vaegan.training import distributed
from vaegan.training.distributed import Ranks
from vaegan.training.factory import build_training
from vaegan.training.progress import Progress

log = logging.getLogger(__name__)


RECORD_KEYS = ("kind", "step", "epoch", "skipped", "nonfinite_steps")  # a train record's fields besides values


@dataclass
class Position:
    """Where the data order stands: `batch` batches of `epoch` are done; `step` updates in total, which took
    `seconds` of training (every leg's step time, without checkpoints and epoch-end work)."""

    step: int = 0
    epoch: int = 0
    batch: int = 0
    seconds: float = 0.0


class TrainingEvents:
    """What the loop announces; override what you need (the defaults do nothing). An epoch's checkpoint is
    written after `epoch_end`, so records it logs are kept by a resume."""

    def step_end(self, trainer: Trainer, step: int, values: dict[str, float]) -> None:
        """Called at each flush (on rank 0 only), once per step it brings to the host, in step order."""

    def epoch_end(self, trainer: Trainer) -> None:
        """Called after the flush at the end of each epoch that brings its work (`epoch_work_due`), with
        `position` at the start of the next; on every rank of a distributed run, so that the ranks can measure
        together (only rank 0 may write)."""


@dataclass
class PendingStep:
    """A step whose logged values are still on the device."""

    step: int
    epoch: int
    values: dict[str, torch.Tensor]
    skipped: torch.Tensor


@dataclass
class Streak:
    """Non-finite steps in a row, as the host last saw them."""

    length: int = 0
    first: int = 0  # the step it began at


@dataclass
class TrainingLeg:
    """What one call of `fit` did: the steps it ran and the time they took."""

    steps: int
    step_seconds: float
    wall_seconds: float


class TrainingLoop:
    """The schedule every trainer runs: epochs of batches, the pending steps' values flushed to the host every
    `log_every` steps (and before each checkpoint and epoch end), checkpoints every `train.ckpt_every` steps,
    at every epoch end and at the end. Subclasses say what a batch, a step, a flush and a checkpoint are."""

    cfg: Config
    position: Position
    log_every: int
    saved_step: int | None
    images_per_step: int
    progress_enabled: bool

    @property
    def epoch_length(self) -> int:
        raise NotImplementedError

    @property
    def total_steps(self) -> int:
        return self.cfg.train.max_steps or self.cfg.train.epochs * self.epoch_length

    def epoch_work_due(self) -> bool:
        """Whether the epoch just ended brings its work (test metrics, grids, checkpoint): the first epoch end
        on or after each multiple of `train.epoch_work_steps` steps. A function of the epoch alone, so a resumed
        run keeps the schedule."""
        every, length, epoch = self.cfg.train.epoch_work_steps, self.epoch_length, self.position.epoch
        return epoch * length // every > (epoch - 1) * length // every

    def adversarial(self) -> bool:
        """Whether the GAN terms are on: after `vae_warmup_epochs` of VAE-only training."""
        return self.position.epoch >= self.cfg.train.vae_warmup_epochs

    def batches(self, epoch: int, start: int):
        raise NotImplementedError

    def step_batch(self, x: torch.Tensor, y: torch.Tensor, adversarial: bool):
        raise NotImplementedError

    def flush(self, pending: list[PendingStep], progress: Progress) -> None:
        raise NotImplementedError

    def checkpoint_allowed(self) -> bool:
        raise NotImplementedError

    def save_checkpoint(self) -> None:
        raise NotImplementedError

    def end_epoch(self) -> None:
        raise NotImplementedError

    def fit(self) -> TrainingLeg:
        """Train until `total_steps`, checkpointing every `ckpt_every` steps, at every epoch end and at the end."""
        cfg = self.cfg.train
        pos = self.position
        first_step, started, other_seconds = pos.step, time.perf_counter(), 0.0
        earlier_seconds = pos.seconds

        def step_seconds() -> float:
            return earlier_seconds + time.perf_counter() - started - other_seconds
        pending: list[PendingStep] = []
        progress = Progress(self.total_steps, pos.step, self.images_per_step, enabled=self.progress_enabled)
        try:
            while pos.step < self.total_steps:
                adversarial = self.adversarial()
                for x, y in self.batches(pos.epoch, pos.batch):
                    out = self.step_batch(x, y, adversarial)
                    pos.step += 1
                    pos.batch += 1
                    pending.append(PendingStep(pos.step, pos.epoch, out.values, out.skipped))
                    checkpoint_due = pos.step % cfg.ckpt_every == 0
                    last = pos.step >= self.total_steps or pos.batch == self.epoch_length
                    if pos.step % self.log_every == 0 or checkpoint_due or last:
                        self.flush(pending, progress)
                    if checkpoint_due and self.checkpoint_allowed():
                        tick = time.perf_counter()
                        pos.seconds = step_seconds()
                        self.save_checkpoint()
                        other_seconds += time.perf_counter() - tick
                    if pos.step >= self.total_steps:
                        break
                if pos.batch == self.epoch_length:
                    tick = time.perf_counter()
                    pos.seconds = step_seconds()
                    pos.epoch += 1
                    pos.batch = 0
                    if self.epoch_work_due():
                        self.end_epoch()
                        if self.checkpoint_allowed():
                            self.save_checkpoint()
                    other_seconds += time.perf_counter() - tick
        finally:
            progress.close()
        if self.saved_step != pos.step:
            pos.seconds = step_seconds()
            self.save_checkpoint()
        wall = time.perf_counter() - started
        return TrainingLeg(pos.step - first_step, wall - other_seconds, wall)


class Trainer(TrainingLoop):
    def __init__(self, cfg: Config, rundir: RunDir, train_set: ImageDataset, events: TrainingEvents | None = None,
                 recorded_speed: dict | None = None, ranks: Ranks = Ranks(), data: dict | None = None):
        """`recorded_speed`: the speed record of the checkpoint a resumed run continues from; `data`: what the
        run trains on (its fingerprints), kept in every checkpoint so a resume can compare. With several
        `ranks`, `train.batch_size` stays the global batch: each rank trains on batch_size / world_size images
        of it, and only rank 0 writes files; `epoch_end` is called on every rank (collective measurements),
        `step_end` on rank 0."""
        check_consistency(cfg)
        if cfg.train.batch_size % ranks.world_size:
            raise VaeganError(f"train.batch_size={cfg.train.batch_size} is the global batch and must divide by the "
                              f"{ranks.world_size} processes")
        self.cfg, self.rundir, self.ranks, self.data = cfg, rundir, ranks, data
        self.events = events or TrainingEvents()
        self.device = select_device(cfg.train.device)
        self.speed = run_speed(cfg.train, self.device, recorded_speed)
        self.log_every = cfg.train.log_every or (1 if self.device.type == "cpu" else 50)
        configure_process(self.speed)
        self.num_classes, self.train_images = train_set.num_classes, len(train_set)
        parts = build_training(cfg, self.num_classes, self.device, self.speed, ranks)
        self.model, self.optimizer, self.d_optimizer = parts.model, parts.optimizer, parts.d_optimizer
        self.ema, self.step_fn = parts.ema, parts.step
        self.perceptual_sha256 = parts.perceptual.weights_sha256 if parts.perceptual is not None else None
        self.loader = BatchLoader(train_set, cfg.train.batch_size // ranks.world_size, shuffle=True,
                                  hflip=cfg.data.hflip, crop_padding=cfg.data.crop_padding, seed=cfg.train.seed,
                                  rank=ranks.rank, world_size=ranks.world_size, device=self.device,
                                  channels_last=self.speed.channels_last)
        self.position = Position()
        self.nonfinite_steps = 0
        self.streak = Streak()
        self.metrics_log = rundir.metrics_log()
        self.saved_step: int | None = None  # the step of the last checkpoint this process wrote or read
        self.images_per_step, self.progress_enabled = cfg.train.batch_size, ranks.main
        self.fused: dict[str, Any] | None = None  # as a member of a fused group: its runs and its place among them

    @property
    def epoch_length(self) -> int:
        return len(self.loader)

    @property
    def speed_record(self) -> dict:
        return speed_record(self.cfg.train, self.device, self.speed)

    @property
    def eval_model(self) -> GenerativeModel:
        """The model used for figures and test metrics: with the EMA generator when EMA is on."""
        return self.model if self.ema is None else self.model.with_decoder(self.ema.shadow)

    # ---- checkpoints ---------------------------------------------------------------------------------

    def save_checkpoint(self) -> None:
        """Called on every rank (it gathers each rank's RNG state); rank 0 writes."""
        payload = self.checkpoint()
        if payload is not None:
            ckpt.write_checkpoint(self.rundir.checkpoint, payload)

    def checkpoint(self) -> dict[str, Any] | None:
        """What the checkpoint at this step holds (None on ranks other than 0); called on every rank."""
        pos = self.position
        rng = ckpt.rng_state()
        rng_ranks = distributed.gather(rng, self.ranks.world_size) if self.ranks.distributed else None
        self.saved_step = pos.step
        if not self.ranks.main:
            return None
        return {
            "config": self.cfg.to_dict(), "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "d_optimizer": None if self.d_optimizer is None else self.d_optimizer.state_dict(),
            "ema": None if self.ema is None else self.ema.state_dict(), "nonfinite_steps": self.nonfinite_steps,
            "rng": rng, "rng_ranks": rng_ranks, "world_size": self.ranks.world_size, "step": pos.step,
            "epoch": pos.epoch, "batch": pos.batch, "train_seconds": pos.seconds,
            "metrics_offset": self.metrics_log.offset(),
            "num_classes": self.num_classes, "speed": self.speed_record, "perceptual_sha256": self.perceptual_sha256,
            "data": self.data, "fused": self.fused}

    def restore(self, payload: dict[str, Any]) -> None:
        """Load a checkpoint's state; one that does not fit the model its config describes is refused."""
        missing = [key for key, needed in (("d_optimizer", self.d_optimizer), ("ema", self.ema))
                   if needed is not None and payload.get(key) is None]
        if missing:
            raise VaeganError(f"the checkpoint of {self.rundir} has no {', '.join(missing)} state, which this "
                              "model needs: it was written by another version of vaegan")
        saved_world = payload.get("world_size", 1)
        if saved_world != self.ranks.world_size:
            raise VaeganError(f"{self.rundir} was trained by {saved_world} process(es); resume it with the same "
                              f"number (torchrun --nproc_per_node={saved_world}), not {self.ranks.world_size}: the "
                              "data order and random streams depend on it")
        if payload.get("perceptual_sha256") != self.perceptual_sha256:
            raise VaeganError(f"{self.rundir} was trained with another perceptual network file than "
                              f"{self.cfg.loss.perceptual_weights or 'the one found now'} (its sha256 differs); "
                              f"resume it with the same file")
        with ckpt.state_must_fit(self.rundir.path):
            self.model.load_state_dict(payload["model"])
            self.optimizer.load_state_dict(payload["optimizer"])
            if self.d_optimizer is not None:
                self.d_optimizer.load_state_dict(payload["d_optimizer"])
            if self.ema is not None:
                self.ema.load_state_dict(payload["ema"])
        self.nonfinite_steps = payload.get("nonfinite_steps", 0)
        ckpt.set_rng_state(payload["rng_ranks"][self.ranks.rank] if self.ranks.distributed else payload["rng"])
        self.position = Position(payload["step"], payload["epoch"], payload["batch"],
                                 payload.get("train_seconds", 0.0))
        self.saved_step = payload["step"]
        if self.ranks.main and not self.metrics_log.truncate(payload["metrics_offset"]):
            log.warning("%s is shorter than when the checkpoint was written (deleted or cut by hand); new records "
                        "are appended to what is left", self.rundir.metrics_file)

    # ---- loop ----------------------------------------------------------------------------------------

    def batches(self, epoch: int, start: int):
        return self.loader.epoch_batches(epoch, start=start)

    def step_batch(self, x: torch.Tensor, y: torch.Tensor, adversarial: bool):
        return self.step_fn(x, y, adversarial=adversarial)

    def checkpoint_allowed(self) -> bool:
        return self.streak.length == 0  # the last good checkpoint stays while a non-finite streak lasts

    def end_epoch(self) -> None:
        self.events.epoch_end(self)

    def flush(self, pending: list[PendingStep], progress: Progress) -> None:
        """Bring the pending steps' values to the host in one transfer, write their records, and stop the run
        when `max_nonfinite` of them in a row were skipped."""
        if not pending:
            return
        flat = torch.stack([t for p in pending for t in (*p.values.values(), p.skipped.float())])
        if self.ranks.distributed:  # the logged values of the whole global batch; skips agree already
            flat = distributed.average(flat, self.ranks.world_size)
        flat = flat.tolist()
        rows, offset = [], 0
        for p in pending:
            rows.append((p.step, p.epoch, dict(zip(p.values, flat[offset:offset + len(p.values)])),
                         bool(flat[offset + len(p.values)])))
            offset += len(p.values) + 1
        records, self.nonfinite_steps = train_records(rows, self.streak, self.nonfinite_steps,
                                                      self.cfg.train.max_nonfinite)
        pending.clear()
        if self.ranks.main:
            self.metrics_log.write_many(records)
            for record in records:
                self.events.step_end(self, record["step"], {k: v for k, v in record.items()
                                                            if k not in ("kind", "step", "epoch")})
        progress.update(records[-1]["step"], records[-1])
        if self.streak.length >= self.cfg.train.max_nonfinite:
            raise VaeganError(divergence_message(self.streak, self.rundir, self.saved_step))


def train_records(rows: list[tuple[int, int, dict[str, float], bool]], streak: Streak, nonfinite_steps: int,
                  max_nonfinite: int) -> tuple[list[dict[str, Any]], int]:
    """The `train` records of one run's flushed steps ((step, epoch, values, skipped) each) and its new count of
    skipped steps; `streak` follows the skips, and the records stop at the step where it reaches
    `max_nonfinite` (the run ends there)."""
    records = []
    for step, epoch, values, skipped in rows:
        nonfinite_steps += skipped
        streak.first = step if streak.length == 0 else streak.first
        streak.length = streak.length + 1 if skipped else 0
        records.append({"kind": "train", "step": step, "epoch": epoch, "skipped": skipped,
                        "nonfinite_steps": nonfinite_steps, **values})
        if streak.length >= max_nonfinite:
            break
    return records, nonfinite_steps


def divergence_message(streak: Streak, rundir: RunDir, saved_step: int | None) -> str:
    kept = (f"{rundir.checkpoint} still holds the last good state (step {saved_step})"
            if saved_step is not None else "no checkpoint had been written yet")
    return (f"training diverged: {streak.length} non-finite losses or gradients in a row (steps "
            f"{streak.first}-{streak.first + streak.length - 1}); {kept}. Lower optim.lr / optim.d_lr or "
            "loss.gan_weight, then start again or resume with a changed schedule")
