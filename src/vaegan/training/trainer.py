"""The training loop: seeded, logged, checkpointed, and resumable bit-exactly on CPU.

The trainer runs steps, writes one `train` record per step to metrics.jsonl, checkpoints every
`train.ckpt_every` steps, at each epoch end and at the finish, and tells its `TrainingEvents` when a step or an
epoch ends. What happens then (test metrics, figures, TensorBoard, the summary) is the experiment's business
(vaegan/experiment.py): training knows no figures.

A step whose loss or gradient is not finite updates nothing and is counted (`nonfinite_steps` in the
metrics); `train.max_nonfinite` of them in a row stop the run with the last good checkpoint untouched (no
checkpoint is written while the streak lasts).
"""

from __future__ import annotations

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
from vaegan.training.factory import build_training
from vaegan.training.progress import Progress


@dataclass
class Position:
    """Where the data order stands: `batch` batches of `epoch` are done; `step` updates in total."""

    step: int = 0
    epoch: int = 0
    batch: int = 0


class TrainingEvents:
    """What the loop announces; override what you need (the defaults do nothing). An epoch's checkpoint is
    written after `epoch_end`, so records it logs are kept by a resume."""

    def step_end(self, trainer: Trainer, values: dict[str, float]) -> None:
        pass

    def epoch_end(self, trainer: Trainer) -> None:
        pass


@dataclass
class TrainingLeg:
    """What one call of `fit` did: the steps it ran and the time they took."""

    first_step: int
    steps: int
    step_seconds: float
    wall_seconds: float


class Trainer:
    def __init__(self, cfg: Config, files: RunDir, train_set: ImageDataset, events: TrainingEvents | None = None,
                 recorded_speed: dict | None = None):
        """`recorded_speed`: the speed record of the checkpoint a resumed run continues from."""
        check_consistency(cfg)
        self.cfg, self.files = cfg, files
        self.events = events or TrainingEvents()
        self.device = select_device(cfg.train.device)
        self.speed = run_speed(cfg.train.speed, self.device, recorded_speed)
        configure_process(self.speed)
        self.num_classes = train_set.num_classes
        parts = build_training(cfg, self.num_classes, self.device, self.speed)
        self.model, self.optimizer, self.d_optimizer = parts.model, parts.optimizer, parts.d_optimizer
        self.ema, self.step_fn = parts.ema, parts.step
        self.loader = BatchLoader(train_set, cfg.train.batch_size, shuffle=True, hflip=cfg.data.hflip,
                                  crop_padding=cfg.data.crop_padding, seed=cfg.train.seed, device=self.device,
                                  channels_last=self.speed.channels_last)
        self.position = Position()
        self.nonfinite_steps = 0
        self.metrics = files.metrics_log()
        self.saved_step: int | None = None  # the step of the last checkpoint this process wrote or read

    @property
    def total_steps(self) -> int:
        return self.cfg.train.max_steps or self.cfg.train.epochs * len(self.loader)

    @property
    def speed_record(self) -> dict:
        return speed_record(self.cfg.train.speed, self.device, self.speed)

    @property
    def eval_model(self) -> GenerativeModel:
        """The model used for figures and test metrics: with the EMA generator when EMA is on."""
        return self.model if self.ema is None else self.model.with_decoder(self.ema.shadow)

    def adversarial(self) -> bool:
        """Whether the GAN terms are on: after `vae_warmup_epochs` of VAE-only training."""
        return self.position.epoch >= self.cfg.train.vae_warmup_epochs

    # ---- checkpoints ---------------------------------------------------------------------------------

    def save_checkpoint(self) -> None:
        pos = self.position
        ckpt.write_checkpoint(self.files.checkpoint, {
            "config": self.cfg.to_dict(), "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "d_optimizer": None if self.d_optimizer is None else self.d_optimizer.state_dict(),
            "ema": None if self.ema is None else self.ema.state_dict(), "nonfinite_steps": self.nonfinite_steps,
            "rng": ckpt.rng_state(), "step": pos.step, "epoch": pos.epoch, "batch": pos.batch,
            "metrics_offset": self.metrics.offset(), "num_classes": self.num_classes,
            "speed": self.speed_record})
        self.saved_step = pos.step

    def restore(self, payload: dict[str, Any]) -> None:
        """Load a checkpoint's state; one that does not fit the model its config describes is refused."""
        missing = [key for key, needed in (("d_optimizer", self.d_optimizer), ("ema", self.ema))
                   if needed is not None and payload.get(key) is None]
        if missing:
            raise VaeganError(f"the checkpoint of {self.files} has no {', '.join(missing)} state, which this "
                              "model needs: it was written by another version of vaegan")
        with ckpt.state_must_fit(self.files.path):
            self.model.load_state_dict(payload["model"])
            self.optimizer.load_state_dict(payload["optimizer"])
            if self.d_optimizer is not None:
                self.d_optimizer.load_state_dict(payload["d_optimizer"])
            if self.ema is not None:
                self.ema.load_state_dict(payload["ema"])
        self.nonfinite_steps = payload.get("nonfinite_steps", 0)
        ckpt.set_rng_state(payload["rng"])
        self.position = Position(payload["step"], payload["epoch"], payload["batch"])
        self.saved_step = payload["step"]
        if not self.metrics.truncate(payload["metrics_offset"]):
            print(f"warning: {self.files.metrics} is shorter than when the checkpoint was written (deleted or cut "
                  "by hand); new records are appended to what is left")

    # ---- loop ----------------------------------------------------------------------------------------

    def fit(self) -> TrainingLeg:
        """Train until `total_steps`, checkpointing every `ckpt_every` steps, at every epoch end and at the end."""
        cfg = self.cfg.train
        pos = self.position
        first_step, started, step_seconds = pos.step, time.perf_counter(), 0.0
        streak = 0  # non-finite steps in a row
        progress = Progress(self.total_steps, pos.step, cfg.batch_size)
        try:
            while pos.step < self.total_steps:
                adversarial = self.adversarial()
                for x, y in self.loader.epoch_batches(pos.epoch, start=pos.batch):
                    tick = time.perf_counter()
                    out = self.step_fn(x, y, adversarial=adversarial)
                    values = {k: v.item() for k, v in out.values.items()}
                    step_seconds += time.perf_counter() - tick
                    pos.step += 1
                    pos.batch += 1
                    streak = streak + 1 if out.skipped else 0
                    self.nonfinite_steps += out.skipped
                    self.metrics.write(kind="train", step=pos.step, epoch=pos.epoch, skipped=out.skipped,
                                       nonfinite_steps=self.nonfinite_steps, **values)
                    self.events.step_end(self, values)
                    progress.update(pos.step, values)
                    if streak >= cfg.max_nonfinite:
                        raise VaeganError(self._divergence_message(streak))
                    if pos.step % cfg.ckpt_every == 0 and streak == 0:
                        self.save_checkpoint()
                    if pos.step >= self.total_steps:
                        break
                if pos.batch == len(self.loader):
                    pos.epoch += 1
                    pos.batch = 0
                    self.events.epoch_end(self)
                    if streak == 0:
                        self.save_checkpoint()
        finally:
            progress.close()
        if self.saved_step != pos.step:
            self.save_checkpoint()
        return TrainingLeg(first_step, pos.step - first_step, step_seconds, time.perf_counter() - started)

    def _divergence_message(self, streak: int) -> str:
        step = self.position.step
        kept = (f"{self.files.checkpoint} still holds the last good state (step {self.saved_step})"
                if self.saved_step is not None else "no checkpoint had been written yet")
        return (f"training diverged: {streak} non-finite losses or gradients in a row (steps {step - streak + 1}-"
                f"{step}); {kept}. Lower optim.lr / optim.d_lr or loss.gan_weight, then start again or resume "
                "with a changed schedule")
