"""The training loop: seeded, logged, checkpointed, and resumable bit-exactly on CPU.

Run directory layout:
    config.yaml             the resolved config
    metrics.jsonl           one JSON object per line: kind "train" (every step) or "test" (every epoch end)
    checkpoints/last.pt     everything needed to resume (see checkpoint.py)
    recon/epoch_NNN.png     real (odd rows) vs reconstruction (even rows) test images (models with an encoder)
    samples/epoch_NNN.png   samples from fixed z: rows = classes 0-7 for conditional models, else an 8x8 grid
    model.pt                final weights (a plain state_dict; with EMA on, the generator is the EMA copy)
    summary.json            final test metrics, steps, wall time and images/s

Figures and test metrics use the EMA generator when `train.ema_decay` > 0. A step whose loss is not finite
updates nothing and is counted (`nonfinite_steps` in the metrics); `train.max_nonfinite` of them in a row stop
the run with the last good checkpoint untouched (no checkpoint is written while the streak lasts).
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from vaegan.config import Config, apply_overrides, check_consistency, from_dict, frozen_differences, save_config
from vaegan.data import BatchLoader, ImageDataset, load_dataset
from vaegan.errors import VaeganError
from vaegan.evaluation import evaluate_reconstruction
from vaegan.models import GenerativeModel, build_model
from vaegan.training import checkpoint as ckpt
from vaegan.training.device import select_device
from vaegan.training.ema import GeneratorEMA
from vaegan.training.hardware import describe_hardware
from vaegan.training.metrics import MetricsLog
from vaegan.training.performance import apply_speed_settings, configure_process, speed_defaults
from vaegan.training.step import TrainStep, build_adam
from vaegan.training.tensorboard import TensorBoardLog, require_tensorboard
from vaegan.viz import save_sample_grid
from vaegan.viz.figures import first_images, save_reconstructions

RECON_IMAGES = 32
EVAL_BATCH = 500


@dataclass
class Position:
    """Where the data order stands: `batch` batches of `epoch` are done; `step` updates in total."""

    step: int = 0
    epoch: int = 0
    batch: int = 0


class Trainer:
    def __init__(self, cfg: Config, run_dir: Path, train_set: ImageDataset, test_set: ImageDataset):
        check_consistency(cfg)
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.device = select_device(cfg.train.device)
        self.speed = speed_defaults(self.device)
        configure_process(self.speed)
        self.test_set = test_set
        torch.manual_seed(cfg.train.seed)
        model = build_model(cfg.model, train_set.num_classes)
        self.model = apply_speed_settings(model, self.speed).to(self.device)
        betas = (cfg.optim.beta1, cfg.optim.beta2)
        self.optimizer = build_adam(self.model.autoencoder_parameters(), cfg.optim.lr, cfg.optim.weight_decay,
                                    betas, fused=self.speed.fused_adam)
        discriminator = self.model.discriminator
        self.d_optimizer = None if discriminator is None else build_adam(
            discriminator.parameters(), cfg.optim.d_lr, 0.0, betas, fused=self.speed.fused_adam)
        self.ema = GeneratorEMA(self.model.decoder, cfg.train.ema_decay) if cfg.train.ema_decay > 0 else None
        self.step_fn = TrainStep(self.model, self.optimizer, cfg.loss, d_optimizer=self.d_optimizer,
                                 ema=self.ema, speed=self.speed)
        self.loader = BatchLoader(train_set, cfg.train.batch_size, shuffle=True, hflip=cfg.data.hflip,
                                  crop_padding=cfg.data.crop_padding, seed=cfg.train.seed, device=self.device,
                                  channels_last=self.speed.channels_last)
        self.position = Position()
        self.nonfinite_steps = 0
        self.metrics = MetricsLog(self.run_dir / "metrics.jsonl")
        self.tensorboard: TensorBoardLog | None = None  # opened by fit() when train.tensorboard is on
        self.last_test: dict[str, float] = {}
        self.last_test_step = -1

    @property
    def total_steps(self) -> int:
        return self.cfg.train.max_steps or self.cfg.train.epochs * len(self.loader)

    @property
    def checkpoint_path(self) -> Path:
        return self.run_dir / "checkpoints" / "last.pt"

    @property
    def eval_model(self) -> GenerativeModel:
        """The model used for figures and test metrics: with the EMA generator when EMA is on."""
        return self.model if self.ema is None else self.model.with_decoder(self.ema.shadow)

    def open_tensorboard(self) -> None:
        """Start the TensorBoard mirror when `train.tensorboard` is on (events after the current step are
        replaced, like the metrics lines after a checkpoint)."""
        if self.cfg.train.tensorboard and self.tensorboard is None:
            self.tensorboard = TensorBoardLog(self.run_dir, first_step=self.position.step + 1)

    def adversarial(self) -> bool:
        """Whether the GAN terms are on: after `vae_warmup_epochs` of VAE-only training."""
        return self.position.epoch >= self.cfg.train.vae_warmup_epochs

    # ---- checkpoints ---------------------------------------------------------------------------------

    def save_checkpoint(self) -> None:
        payload = ckpt.make_payload(
            config=self.cfg.to_dict(), model=self.model.state_dict(), optimizer=self.optimizer.state_dict(),
            d_optimizer=None if self.d_optimizer is None else self.d_optimizer.state_dict(),
            ema=None if self.ema is None else self.ema.state_dict(), nonfinite_steps=self.nonfinite_steps,
            rng=ckpt.rng_state(), step=self.position.step, epoch=self.position.epoch, batch=self.position.batch,
            metrics_offset=self.metrics.offset())
        ckpt.save_atomic(payload, self.checkpoint_path)

    def restore(self, payload: dict[str, Any]) -> None:
        """Load a checkpoint's state; one that does not fit the model its config describes is refused."""
        missing = [key for key, needed in (("d_optimizer", self.d_optimizer), ("ema", self.ema))
                   if needed is not None and payload.get(key) is None]
        if missing:
            raise VaeganError(f"the checkpoint of {self.run_dir} has no {', '.join(missing)} state, which this "
                              "model needs: it was written by another version of vaegan")
        with ckpt.state_must_fit(self.run_dir):
            self.model.load_state_dict(payload["model"])
            self.optimizer.load_state_dict(payload["optimizer"])
            if self.d_optimizer is not None:
                self.d_optimizer.load_state_dict(payload["d_optimizer"])
            if self.ema is not None:
                self.ema.load_state_dict(payload["ema"])
        self.nonfinite_steps = payload.get("nonfinite_steps", 0)
        ckpt.set_rng_state(payload["rng"])
        self.position = Position(payload["step"], payload["epoch"], payload["batch"])
        self.metrics.truncate(payload["metrics_offset"])

    # ---- loop ----------------------------------------------------------------------------------------

    def test_batches(self):
        images = self.cfg.train.eval_images
        subset = self.test_set if images is None else self.test_set.head(images)
        loader = BatchLoader(subset, EVAL_BATCH, shuffle=False, drop_last=False, device=self.device,
                             channels_last=self.speed.channels_last)
        return loader.epoch_batches(0)

    def evaluate(self) -> dict[str, float]:
        """Test-set reconstruction metrics (models with an encoder; a GAN has none to log)."""
        result = {}
        if self.model.encoder is not None:
            result = evaluate_reconstruction(self.eval_model, self.test_batches(), self.cfg.loss.beta,
                                             self.cfg.loss.reduction)
            self.metrics.write(kind="test", step=self.position.step, epoch=self.position.epoch, **result)
            if self.tensorboard is not None:
                self.tensorboard.scalars("test", self.position.step, result)
        self.last_test, self.last_test_step = result, self.position.step
        return result

    def save_figures(self, name: str) -> None:
        """Sample grid (fixed z) and, with an encoder, the real-vs-reconstruction grid of the first test images."""
        model = self.eval_model
        written = [save_sample_grid(model, self.run_dir / "samples" / f"{name}.png", self.test_set.class_names)]
        if model.encoder is not None:
            x, y = first_images(self.test_set, RECON_IMAGES, self.device)
            written.append(self.run_dir / "recon" / f"{name}.png")
            save_reconstructions(model, x, y, written[-1], f"step {self.position.step}")
        if self.tensorboard is not None:
            for png in written:
                self.tensorboard.image(png.parent.name, png, self.position.step)

    def fit(self) -> dict[str, Any]:
        """Train until `total_steps`, evaluating and checkpointing at every epoch end and at the finish."""
        cfg = self.cfg.train
        pos = self.position
        start_step, started, step_seconds = pos.step, time.perf_counter(), 0.0
        streak = 0  # non-finite steps in a row
        self.open_tensorboard()
        bar = tqdm(total=self.total_steps, initial=pos.step, desc="train", unit="step", dynamic_ncols=True,
                   disable=None)
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
                if self.tensorboard is not None:
                    self.tensorboard.scalars("train", pos.step, values)
                bar.update(1)
                if streak >= cfg.max_nonfinite:
                    bar.close()
                    raise VaeganError(
                        f"training diverged: {streak} non-finite losses in a row (steps {pos.step - streak + 1}-"
                        f"{pos.step}); {self.checkpoint_path} still holds the last good state. Lower optim.lr / "
                        "optim.d_lr or loss.gan_weight, then start again or resume with a changed schedule")
                if pos.step % 10 == 0:
                    bar.set_postfix({k: f"{values[k]:.4g}" for k in ("loss", "mse_per_pixel", "kl", "d_loss")
                                     if k in values})
                if pos.step % cfg.ckpt_every == 0 and streak == 0:
                    self.save_checkpoint()
                if pos.step >= self.total_steps:
                    break
            if pos.batch == len(self.loader):
                self.end_of_epoch(write_checkpoint=streak == 0)
        bar.close()
        final = self.last_test if self.last_test_step == pos.step else self.evaluate()
        self.save_figures("final")
        self.save_checkpoint()
        torch.save(self.eval_model.state_dict(), self.run_dir / "model.pt")
        trained_images = (pos.step - start_step) * cfg.batch_size
        summary = {"step": pos.step, "epoch": pos.epoch, "test": final, "device": str(self.device),
                   "hardware": describe_hardware(self.device), "nonfinite_steps": self.nonfinite_steps,
                   "wall_seconds": round(time.perf_counter() - started, 2),
                   "train_seconds": round(step_seconds, 2),
                   "images_per_second": round(trained_images / step_seconds, 1) if step_seconds > 0 else None}
        (self.run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        if self.tensorboard is not None:
            self.tensorboard.close()
        return summary

    def end_of_epoch(self, write_checkpoint: bool = True) -> None:
        pos = self.position
        pos.epoch += 1
        pos.batch = 0
        self.evaluate()
        if pos.epoch % self.cfg.train.recon_every == 0:
            self.save_figures(f"epoch_{pos.epoch:03d}")
        if write_checkpoint:
            self.save_checkpoint()


# ---- entry points ------------------------------------------------------------------------------------

def _load_splits(cfg: Config) -> tuple[ImageDataset, ImageDataset]:
    return tuple(load_dataset(cfg.data.name, split, cfg.data.dir, download=cfg.data.download)
                 for split in ("train", "test"))


def train(cfg: Config, run_dir: Path, overwrite: bool = False) -> dict[str, Any]:
    """Start a new run in `run_dir`. Data is loaded before anything in `run_dir` is touched, so a failure
    (missing data, say) never destroys an earlier run there."""
    run_dir = Path(run_dir)
    if (run_dir / "checkpoints" / "last.pt").exists() and not overwrite:
        raise VaeganError(f"{run_dir} already holds a run; continue it with `vaegan train --resume {run_dir}`, "
                          "or choose another --run-dir")
    check_consistency(cfg)
    if cfg.train.tensorboard:
        require_tensorboard()
    train_set, test_set = _load_splits(cfg)
    if run_dir.exists() and overwrite:
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(cfg, run_dir / "config.yaml")
    trainer = Trainer(cfg, run_dir, train_set, test_set)
    trainer.metrics.truncate(0)
    trainer.open_tensorboard()
    trainer.evaluate()
    return trainer.fit()


def resume(run_dir: Path, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Continue a run from `checkpoints/last.pt`; only schedule keys may change."""
    run_dir = Path(run_dir)
    payload = ckpt.load_checkpoint(run_dir / "checkpoints" / "last.pt")
    saved = from_dict(payload["config"], where=f"config stored in {run_dir}/checkpoints/last.pt")
    cfg = apply_overrides(saved, overrides or {})
    changed = frozen_differences(saved, cfg)
    if changed:
        raise VaeganError(f"cannot resume {run_dir} with a different {', '.join(changed)}: those keys define the "
                          "experiment; only train.* schedule keys (epochs, max_steps, ckpt_every, ...) may change")
    if cfg.train.tensorboard:
        require_tensorboard()
    train_set, test_set = _load_splits(cfg)
    trainer = Trainer(cfg, run_dir, train_set, test_set)
    trainer.restore(payload)
    if trainer.position.step >= trainer.total_steps:
        raise VaeganError(f"{run_dir} already finished its {trainer.total_steps} steps; extend it with "
                          "train.max_steps=N or train.epochs=N")
    save_config(cfg, run_dir / "config.yaml")
    return trainer.fit()
