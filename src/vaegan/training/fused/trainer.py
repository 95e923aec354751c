"""The loop of a fused group: one TrainingLoop for K runs, each with its own folder, records and checkpoints.

Member k's checkpoint is the one its run would write alone (model, Adam and EMA state as torch and
GeneratorEMA lay them out, its own random stream), so a member's folder resumes, evaluates and reports alone,
and a group resumes by stacking its members' checkpoints. The group's checkpoints are written together
(`write_checkpoints`): a kill leaves every member at the same step.
"""

from __future__ import annotations

import logging
from typing import Any

import torch

from vaegan.config import Config, check_consistency
from vaegan.data import BatchLoader, ImageDataset
from vaegan.errors import VaeganError
from vaegan.models import GenerativeModel, build_model
from vaegan.objectives.perceptual import build_perceptual_loss
from vaegan.runs import RunDir
from vaegan.runs import checkpoint as ckpt
from vaegan.runs.cache import cache_dir
from vaegan.runs.device import select_device
from vaegan.speed import SpeedSettings, configure_process, run_speed, speed_record
from vaegan.speed.fast_dropout import use_fast_dropout
from vaegan.training.distributed import Ranks
from vaegan.training.ema import GeneratorEMA
from vaegan.training.factory import build_adam
from vaegan.training.fused.adam import MemberAdam
from vaegan.training.fused.model import MemberRandom, fuse_models, member_state, stack_states
from vaegan.training.fused.step import FusedStep
from vaegan.training.progress import Progress
from vaegan.training.trainer import (RECORD_KEYS, PendingStep, Position, Streak, TrainingEvents, TrainingLoop,
                                     check_checkpoint_fits, checkpoint_payload, divergence_message, train_records)

log = logging.getLogger(__name__)

# Config keys whose values members may hold each their own: they change numbers, not tensor shapes or the
# schedule. Every other key must be equal (and loss.feature_weight, loss.perceptual_weight and
# train.ema_decay must be zero in all members or in none, as they add or remove tensors).
MEMBER_VALUES = frozenset({
    "data.dir", "data.download", "data.hflip", "data.crop_padding", "data.train_subset", "data.test_fraction",
    "model.dropout", "loss.beta", "loss.reduction", "loss.gan_weight", "loss.gan_loss", "loss.feature_weight",
    "loss.perceptual_weight", "optim.lr", "optim.d_lr", "optim.weight_decay", "optim.beta1", "optim.beta2",
    "train.seed", "train.recon_every", "train.eval_images", "train.ema_decay", "train.max_nonfinite",
    "train.tensorboard"})
SWITCHES = ("loss.feature_weight", "loss.perceptual_weight", "train.ema_decay")


def fuse_key(cfg: Config, train_images: int, num_classes: int) -> tuple:
    """Runs with equal keys build the same tensor shapes on the same schedule, so they can train fused."""
    flat = {f"{section}.{key}": value for section, values in cfg.to_dict().items() for key, value in values.items()}
    shared = tuple(sorted((key, repr(value)) for key, value in flat.items() if key not in MEMBER_VALUES))
    return shared + tuple(flat[key] > 0 for key in SWITCHES) + (train_images, num_classes)


class Member:
    """One run of a fused group, as the experiment around it sees a trainer: its folder, records and state."""

    def __init__(self, group: FusedTrainer, index: int, cfg: Config, rundir: RunDir, train_set: ImageDataset,
                 data: dict | None):
        self.group, self.index, self.cfg, self.rundir, self.data = group, index, cfg, rundir, data
        self.events = TrainingEvents()
        self.ranks = Ranks()
        self.train_images, self.num_classes = len(train_set), train_set.num_classes
        self.metrics_log = rundir.metrics_log()
        self.nonfinite_steps, self.streak = 0, Streak()
        self.saved_step: int | None = None
        self.failed: str | None = None  # why it stopped early (divergence); the others go on
        self.loader: BatchLoader | None = None
        self.param_groups: list[list[dict]] = []  # its torch Adam param_groups (E/G, D), for its checkpoints
        self.rng: dict[str, Any] = {}  # its full RNG record; the device's stream lives in the group's MemberRandom
        self._eval_model: tuple[int, GenerativeModel] | None = None

    @property
    def position(self) -> Position:
        return self.group.position

    @property
    def device(self) -> torch.device:
        return self.group.device

    @property
    def speed(self) -> SpeedSettings:
        return self.group.speed

    @property
    def speed_record(self) -> dict:
        return speed_record(self.cfg.train, self.device, self.speed)

    @property
    def perceptual_sha256(self) -> str | None:
        return self.group.perceptual_sha256

    @property
    def total_steps(self) -> int:
        return self.group.total_steps

    @property
    def model(self) -> GenerativeModel:
        return self.eval_model

    @property
    def eval_model(self) -> GenerativeModel:
        """This member alone: its own model (with its EMA generator when EMA is on), built from the group's
        weights as they stand at this step."""
        step = self.position.step
        if self._eval_model is None or self._eval_model[0] != step:
            model = build_model(self.cfg.model, self.num_classes)
            model.load_state_dict(member_state(self.group.model.state_dict(), self.index))
            if self.group.ema is not None:
                model.decoder.load_state_dict(member_state(self.group.ema.shadow.state_dict(), self.index))
            self._eval_model = (step, model.to(self.device).eval())
        return self._eval_model[1]

    @property
    def fused_record(self) -> dict[str, Any]:
        """Which runs it trained with (folders, in member order) and which member it was."""
        return {"runs": [str(m.rundir.path) for m in self.group.members], "member": self.index}

    def checkpoint(self) -> dict[str, Any]:
        group, k = self.group, self.index
        ema = None if group.ema is None else {"shadow": member_state(group.ema.shadow.state_dict(), k),
                                              "updates": group.ema.updates[k].clone()}
        d_state = None if group.d_optimizer is None else group.d_optimizer.member_state_dict(k, self.param_groups[1])
        rng = dict(self.rng)
        rng.update(group.random_record(k))
        return {**checkpoint_payload(self, member_state(group.model.state_dict(), k),
                                     group.optimizer.member_state_dict(k, self.param_groups[0]), d_state, ema, rng),
                "fused": self.fused_record}


class FusedTrainer(TrainingLoop):
    def __init__(self, cfgs: list[Config], rundirs: list[RunDir], train_sets: list[ImageDataset],
                 data: list[dict | None], recorded_speeds: list[dict | None] | None = None):
        """Members k = 0..K-1 train `cfgs[k]` on `train_sets[k]` into `rundirs[k]`; their configs must share a
        `fuse_key`. `recorded_speeds`: each member's checkpointed speed record when the group resumes."""
        for cfg in cfgs:
            check_consistency(cfg)
        keys = {fuse_key(cfg, len(ts), ts.num_classes) for cfg, ts in zip(cfgs, train_sets)}
        if len(keys) != 1:
            raise VaeganError("these runs cannot train fused: their configs build different tensor shapes or "
                              "schedules (only values such as loss weights, learning rates, seeds and "
                              "augmentation may differ)")
        self.cfg = cfgs[0]
        self.device = select_device(self.cfg.train.device)
        self.speed = run_speed(self.cfg.train, self.device, (recorded_speeds or [None])[0])
        configure_process(self.speed)
        self.log_every = self.cfg.train.log_every or (1 if self.device.type == "cpu" else 50)
        self.members = [Member(self, k, cfg, rundir, ts, record)
                        for k, (cfg, rundir, ts, record) in enumerate(zip(cfgs, rundirs, train_sets, data))]
        self.images_per_step, self.progress_enabled = self.cfg.train.batch_size * len(cfgs), True
        models = [self._member_model(member) for member in self.members]
        self.random = MemberRandom(self.device, [self._device_state(m.rng) for m in self.members])
        self.model = fuse_models(models, self.random, self.speed.channels_last).to(self.device)
        betas = [(cfg.optim.beta1, cfg.optim.beta2) for cfg in cfgs]
        self.optimizer = MemberAdam(self.model.autoencoder_parameters(), [c.optim.lr for c in cfgs], betas,
                                    [c.optim.weight_decay for c in cfgs])
        self.d_optimizer = None if self.model.discriminator is None else MemberAdam(
            list(self.model.discriminator.parameters()), [c.optim.d_lr for c in cfgs], betas, [0.0] * len(cfgs))
        decays = torch.tensor([cfg.train.ema_decay for cfg in cfgs], dtype=torch.float64, device=self.device)
        self.ema = GeneratorEMA(self.model.decoder, decays) if self.cfg.train.ema_decay > 0 else None
        perceptual = build_perceptual_loss(self.cfg.loss, cache_dir(), self.device)
        self.perceptual_sha256 = perceptual.weights_sha256 if perceptual is not None else None
        self.step_fn = FusedStep(self.model, self.optimizer, [cfg.loss for cfg in cfgs], d_optimizer=self.d_optimizer,
                                 ema=self.ema, perceptual=perceptual, speed=SpeedSettings(precision=self.speed.precision))
        for member, ts in zip(self.members, train_sets):
            c = member.cfg
            member.loader = BatchLoader(ts, c.train.batch_size, shuffle=True, hflip=c.data.hflip,
                                        crop_padding=c.data.crop_padding, seed=c.train.seed, device=self.device)
        self.position = Position()
        self.saved_step: int | None = None

    def _member_model(self, member: Member) -> GenerativeModel:
        """The model member's run would start from (its seed's initial weights), with its optimisers' layout and
        its RNG state after the build, as `build_training` leaves them."""
        torch.manual_seed(member.cfg.train.seed)
        model = build_model(member.cfg.model, member.num_classes)
        if self.speed.fast_dropout:  # a member's dropout draws the stream its run draws alone
            use_fast_dropout(model)
        member.rng = ckpt.rng_state()
        o = member.cfg.optim
        groups = [build_adam(model.autoencoder_parameters(), o.lr, o.weight_decay, (o.beta1, o.beta2),
                             fused=self.speed.fused_adam).state_dict()["param_groups"]]
        if model.discriminator is not None:
            groups.append(build_adam(model.discriminator.parameters(), o.d_lr, 0.0, (o.beta1, o.beta2),
                                     fused=self.speed.fused_adam).state_dict()["param_groups"])
        member.param_groups = groups
        return model

    def _device_state(self, rng: dict[str, Any]) -> torch.Tensor:
        """The device generator's state in a full RNG record."""
        if self.device.type == "cuda":
            return rng["cuda"][self.device.index or 0]
        if self.device.type == "mps":
            return rng["mps"]
        return rng["torch"]

    def random_record(self, member: int) -> dict[str, Any]:
        """The device part of `member`'s RNG record, as its stream stands now."""
        state = self.random.states[member]
        if self.device.type == "cuda":
            cuda = list(self.members[member].rng["cuda"])
            cuda[self.device.index or 0] = state
            return {"cuda": cuda}
        return {"mps": state} if self.device.type == "mps" else {"torch": state}

    @property
    def live(self) -> list[Member]:
        return [m for m in self.members if m.failed is None]

    # ---- checkpoints ---------------------------------------------------------------------------------

    def save_checkpoint(self) -> None:
        """Every live member without a non-finite streak writes its checkpoint; all change together."""
        self.saved_step = self.position.step
        writing = [m for m in self.live if m.streak.length == 0]
        ckpt.write_checkpoints([(m.rundir.checkpoint, m.checkpoint()) for m in writing])
        for member in writing:
            member.saved_step = self.position.step

    def restore(self, payloads: list[dict[str, Any]]) -> None:
        """Stack the members' checkpoints, which must all be at one step."""
        steps = {payload["step"] for payload in payloads}
        if len(steps) != 1:
            raise VaeganError(f"the runs of a fused group stand at different steps ({sorted(steps)}); resume them "
                              "in groups of one step")
        for member, payload in zip(self.members, payloads):
            check_checkpoint_fits(member, payload, self.d_optimizer, self.ema)
        with ckpt.state_must_fit(self.members[0].rundir.path):
            self.model.load_state_dict(stack_states([p["model"] for p in payloads]))
            self.optimizer.load_member_states([p["optimizer"] for p in payloads])
            if self.d_optimizer is not None:
                self.d_optimizer.load_member_states([p["d_optimizer"] for p in payloads])
            if self.ema is not None:
                self.ema.shadow.load_state_dict(stack_states([p["ema"]["shadow"] for p in payloads]))
                self.ema.updates.copy_(torch.stack([torch.as_tensor(p["ema"]["updates"]) for p in payloads]))
        for k, (member, payload) in enumerate(zip(self.members, payloads)):
            member.nonfinite_steps = payload.get("nonfinite_steps", 0)
            member.rng = payload["rng"]
            self.random.states[k] = self._device_state(payload["rng"])
            member.saved_step = payload["step"]
            if not member.metrics_log.truncate(payload["metrics_offset"]):
                log.warning("%s is shorter than when the checkpoint was written (deleted or cut by hand); new "
                            "records are appended to what is left", member.rundir.metrics_file)
        first = payloads[0]
        self.position = Position(first["step"], first["epoch"], first["batch"])
        self.saved_step = first["step"]

    # ---- loop ----------------------------------------------------------------------------------------

    @property
    def epoch_length(self) -> int:
        return len(self.members[0].loader)

    def batches(self, epoch: int, start: int):
        for batches in zip(*(m.loader.epoch_batches(epoch, start=start) for m in self.members)):
            yield torch.cat([x for x, _ in batches]), torch.cat([y for _, y in batches])

    def step_batch(self, x: torch.Tensor, y: torch.Tensor, adversarial: bool):
        return self.step_fn(x, y, adversarial=adversarial)

    def checkpoint_allowed(self) -> bool:
        return any(m.streak.length == 0 for m in self.live)

    def end_epoch(self) -> None:
        for member in self.live:
            member.events.epoch_end(member)

    def flush(self, pending: list[PendingStep], progress: Progress) -> None:
        """Each live member's records of the pending steps (one transfer for all); a member whose non-finite
        streak reaches `max_nonfinite` ends FAILED there, and the others go on."""
        if not pending:
            return
        flat = torch.stack([torch.stack([*p.values.values(), p.skipped.float()]) for p in pending]).tolist()
        shown = None
        for member in self.live:
            rows = [(p.step, p.epoch, {key: values[member.index] for key, values in zip(p.values, row)},
                     bool(row[-1][member.index])) for p, row in zip(pending, flat)]
            records, member.nonfinite_steps = train_records(rows, member.streak, member.nonfinite_steps,
                                                            member.cfg.train.max_nonfinite)
            member.metrics_log.write_many(records)
            for record in records:
                member.events.step_end(member, record["step"],
                                       {k: v for k, v in record.items() if k not in RECORD_KEYS})
            if member.streak.length >= member.cfg.train.max_nonfinite:
                member.failed = divergence_message(member.streak, member.rundir, member.saved_step)
                log.warning("%s: %s", member.rundir, member.failed)
            shown = shown or records[-1]
        pending.clear()
        if not self.live:
            raise VaeganError("every run of the fused group diverged: " + self.members[0].failed)
        progress.update(shown["step"], shown)
