"""The loop of a fused group: one TrainingLoop driving K Trainers, one per run, in step.

Each member is a normal Trainer: its own model, optimisers, EMA, data order, metrics log and checkpoints,
which are exactly those of its run alone (with `fused` saying which group it trained in). The group draws each
member's noise from that member's own stream (MemberRandom), writes the members' checkpoints together
(`write_checkpoints`: a kill leaves every member at one step), and lets a member that diverges end FAILED
while the others go on.
"""

from __future__ import annotations

import logging
from typing import Any

import torch

from vaegan.config import Config
from vaegan.data import ImageDataset
from vaegan.errors import VaeganError
from vaegan.runs import RunDir
from vaegan.runs import checkpoint as ckpt
from vaegan.speed import grouped_member_layers
from vaegan.training.fused.model import MemberRandom
from vaegan.training.fused.step import GroupedStep, MemberSteps
from vaegan.training.progress import Progress
from vaegan.training.trainer import PendingStep, Position, Trainer, TrainingLoop

log = logging.getLogger(__name__)

# Config keys whose values members may hold each their own: they change numbers, not tensor shapes or the
# schedule. Every other key must be equal, and loss.feature_weight, loss.perceptual_weight and train.ema_decay
# must be zero in all members or in none (they add or remove work and tensors).
MEMBER_VALUES = frozenset({
    "data.dir", "data.download", "data.hflip", "data.crop_padding", "data.train_subset", "data.test_fraction",
    "model.dropout", "model.noise_scale", "model.sample_bn_stats", "loss.beta", "loss.reduction",
    "loss.gan_weight", "loss.gan_loss", "loss.feature_weight", "loss.perceptual_weight", "loss.d_augment",
    "loss.class_weight", "optim.lr", "optim.d_lr", "optim.weight_decay", "optim.beta1", "optim.beta2", "train.seed",
    "train.recon_every", "train.eval_images", "train.ema_decay", "train.max_nonfinite", "train.tensorboard",
    "train.log_to"})
SWITCHES = ("loss.feature_weight", "loss.perceptual_weight", "train.ema_decay")


def fuse_key(cfg: Config, train_images: int, num_classes: int) -> tuple:
    """Runs with equal keys build the same tensor shapes on the same schedule, so they can train fused."""
    flat = {f"{section}.{key}": value for section, values in cfg.to_dict().items() for key, value in values.items()}
    shared = tuple(sorted((key, repr(value)) for key, value in flat.items() if key not in MEMBER_VALUES))
    return shared + tuple(flat[key] > 0 for key in SWITCHES) + (train_images, num_classes)


def check_fusable(cfgs: list[Config], train_sets: list[ImageDataset]) -> None:
    """Refuse runs that do not share a fuse key."""
    if len({fuse_key(cfg, len(ts), ts.num_classes) for cfg, ts in zip(cfgs, train_sets, strict=True)}) != 1:
        raise VaeganError("these runs cannot train fused: their configs build different tensor shapes or "
                          "schedules (only values such as loss weights, learning rates, seeds and augmentation "
                          "may differ)")


class FusedTrainer(TrainingLoop):
    def __init__(self, cfgs: list[Config], rundirs: list[RunDir], train_sets: list[ImageDataset],
                 data: list[dict | None], recorded_speeds: list[dict | None] | None = None,
                 grouped: bool | None = None):
        """Member k trains `cfgs[k]` on `train_sets[k]` into `rundirs[k]` (`data[k]`: its data record); the
        configs must share a `fuse_key`. `recorded_speeds`: the members' checkpointed speed records when the group
        resumes. `grouped`: one grouped model for all (default on GPUs, see `grouped_member_layers`) or each
        member's own step."""
        check_fusable(cfgs, train_sets)
        recorded = recorded_speeds or [None] * len(cfgs)
        self.trainers: list[Trainer] = []
        states = []
        for cfg, rundir, train_set, record, speed in zip(cfgs, rundirs, train_sets, data, recorded):
            # every member with the first one's speed settings (a CPU's free cores may change between builds)
            speed = speed or (self.trainers[0].speed_record if self.trainers else None)
            self.trainers.append(Trainer(cfg, rundir, train_set, recorded_speed=speed, data=record))
            states.append(MemberRandom.current(self.trainers[-1].device))  # its stream, as its build left it
        first = self.trainers[0]
        if first.speed.cuda_graph:
            raise VaeganError("train.graph=on captures the step of one run; a fused group steps its members "
                              "eagerly (use train.graph=off, or --fuse off)")
        self.cfg, self.device, self.log_every = first.cfg, first.device, first.log_every
        self.random = MemberRandom(self.device, states)
        steps = [trainer.step_fn for trainer in self.trainers]
        grouped = grouped_member_layers(self.device) if grouped is None else grouped
        self.step_fn = GroupedStep(steps, self.random) if grouped else MemberSteps(steps, self.random)
        self.position = Position()
        runs = [str(rundir.path) for rundir in rundirs]
        for k, trainer in enumerate(self.trainers):
            trainer.position = self.position  # one schedule for all
            trainer.fused = {"runs": runs, "member": k, "grouped": grouped}
        self.failed: list[str | None] = [None] * len(cfgs)  # why a member stopped early (it diverged)
        self.images_per_step, self.progress_enabled = first.cfg.train.batch_size * len(cfgs), True
        self.saved_step: int | None = None

    @property
    def live(self) -> list[int]:
        """The members still training."""
        return [k for k, why in enumerate(self.failed) if why is None]

    # ---- checkpoints ---------------------------------------------------------------------------------

    def save_checkpoint(self) -> None:
        """Every live member without a non-finite streak writes its checkpoint (with its own random stream's
        state); all of them change together."""
        self.saved_step = self.position.step
        writing = [k for k in self.live if self.trainers[k].streak.length == 0]
        payloads = [(self.trainers[k].rundir.checkpoint, self.random.draw(k, self.trainers[k].checkpoint))
                    for k in writing]
        ckpt.write_checkpoints(payloads)

    def restore(self, payloads: list[dict[str, Any]]) -> None:
        """Continue from the members' checkpoints, which must all be at one step."""
        steps = {payload["step"] for payload in payloads}
        if len(steps) != 1:
            raise VaeganError(f"the runs of a fused group stand at different steps ({sorted(steps)}); resume them "
                              "in groups of one step")
        for k, (trainer, payload) in enumerate(zip(self.trainers, payloads)):
            self.random.draw(k, trainer.restore, payload)  # the stream it sets stays the member's
            trainer.position = self.position
        first = payloads[0]
        self.position.step, self.position.epoch, self.position.batch = first["step"], first["epoch"], first["batch"]
        self.position.seconds = first.get("train_seconds", 0.0)
        self.saved_step = first["step"]

    # ---- loop ----------------------------------------------------------------------------------------

    @property
    def epoch_length(self) -> int:
        return self.trainers[0].epoch_length

    def batches(self, epoch: int, start: int):
        for batches in zip(*(trainer.batches(epoch, start) for trainer in self.trainers)):
            yield [x for x, _ in batches], [y for _, y in batches]

    def step_batch(self, xs: list[torch.Tensor], ys: list[torch.Tensor], adversarial: bool):
        return self.step_fn(xs, ys, adversarial=adversarial)

    def checkpoint_allowed(self) -> bool:
        return any(self.trainers[k].streak.length == 0 for k in self.live)

    def end_epoch(self) -> None:
        for k in self.live:
            self.trainers[k].end_epoch()

    def flush(self, pending: list[PendingStep], progress: Progress) -> None:
        """Each live member's records of the pending steps; a member whose non-finite streak reaches
        `max_nonfinite` ends FAILED there, and the others go on."""
        shown = self.live[:1]
        quiet = Progress(self.total_steps, self.position.step, 0, enabled=False)
        for k in self.live:
            member = [PendingStep(p.step, p.epoch, {key: value[k] for key, value in p.values.items()}, p.skipped[k])
                      for p in pending]
            try:
                self.trainers[k].flush(member, progress if k in shown else quiet)
            except VaeganError as err:
                self.failed[k] = str(err)
                log.warning("%s: %s", self.trainers[k].rundir, err)
        pending.clear()
        if not self.live:
            raise VaeganError(f"every run of the fused group diverged ({self.failed[0]})")
