"""A step of K fused runs: each member's TrainStep on its own rows, or all of them as one grouped model."""

from __future__ import annotations

import torch

from vaegan.objectives.diffaugment import diff_augment
from vaegan.speed import autocast
from vaegan.training.fused.model import MemberRandom, fuse_models
from vaegan.training.step import StepOutput, TrainStep, autoencoder_terms, discriminator_terms, generator_terms


def member_cat(tensors: list[torch.Tensor], members: int) -> torch.Tensor:
    """Concatenate member-major batches member by member: member k's rows of each tensor, in order."""
    return torch.cat([t.unflatten(0, (members, -1)) for t in tensors], dim=1).flatten(0, 1)


def member_rows(t: torch.Tensor, members: int, start: int = 0, stop: int | None = None) -> list[torch.Tensor]:
    """Each member's rows start..stop of a member-major batch."""
    return list(t.unflatten(0, (members, -1))[:, start:stop])


def stacked(outputs: list[StepOutput]) -> StepOutput:
    """The members' step outputs as one: each value and the skip flag with one entry per member."""
    return StepOutput({key: torch.stack([out.values[key] for out in outputs]) for key in outputs[0].values},
                      skipped=torch.stack([out.skipped for out in outputs]))


class MemberSteps:
    """Each member's own TrainStep on its own batch, drawing from its own random stream: every member computes
    exactly what its run alone computes. For CPUs, which one run keeps busy."""

    def __init__(self, steps: list[TrainStep], random: MemberRandom):
        self.steps, self.random = steps, random

    def __call__(self, xs: list[torch.Tensor], ys: list[torch.Tensor], *, adversarial: bool = True) -> StepOutput:
        return stacked([self.random.draw(k, step, x, y, adversarial=adversarial)
                        for k, (step, x, y) in enumerate(zip(self.steps, xs, ys))])


class GroupedStep:
    """The members' TrainSteps computed as one (see TrainStep for what a step computes), for GPUs.

    One forward and backward of the grouped model (vaegan.training.fused.model) serve all members; member k's
    losses are computed on its rows with its own LossConfig, and the sum of the members' losses is
    differentiated, so each member's gradients are its own. Each member's own optimisers, EMA and non-finite
    decision then act as in its TrainStep: a member whose loss or gradient is not finite is skipped alone.
    """

    def __init__(self, steps: list[TrainStep], random: MemberRandom):
        self.steps = steps
        self.members = len(steps)
        first = steps[0]
        self.model = fuse_models([step.model for step in steps], random, first.speed.channels_last)
        self.random = random
        self.losses = [step.loss_cfg for step in steps]
        self.perceptual, self.speed = first.perceptual, first.speed
        weight = next(first.model.parameters())
        self.noise_scales = torch.tensor([step.model.noise_scale for step in steps], dtype=weight.dtype,
                                         device=weight.device)
        # each buffer of the model with its K members' copies: saved and restored stacked, a few kernels each
        self.buffers = list(zip(*(list(step.model.buffers()) for step in steps), strict=True))

    def __call__(self, xs: list[torch.Tensor], ys: list[torch.Tensor], *, adversarial: bool = True) -> StepOutput:
        model, k = self.model, self.members
        x, y = torch.cat(xs).contiguous(), model.labels(torch.cat(ys))
        model.train()
        model.noise_scale = self.noise_scales.repeat_interleave(len(x) // k).unsqueeze(1)  # each member's, per row
        saved = [torch.stack(members) for members in self.buffers]
        values: list[dict[str, torch.Tensor]] = [{} for _ in range(k)]
        with autocast(self.speed.precision, x.device):
            g_losses = [x.new_zeros(())] * k
            fakes = []
            if model.encoder is not None:
                x_hat, mu, logvar = model(x, y)
                mu = model.posterior_offset(mu, y)
                g_losses = [autoencoder_terms(*rows, cfg, self.perceptual, vals) for *rows, cfg, vals in zip(
                    *(t.chunk(k) for t in (x_hat, x, mu, logvar)), self.losses, values)]
                if self.losses[0].d_on_recon:
                    fakes.append(x_hat)
            d_losses = None
            if adversarial and model.discriminator is not None:
                if self.losses[0].d_on_prior or model.encoder is None:
                    fakes.append(model.sample(len(x), y))
                g_losses, d_losses = self._adversarial_losses(x, y, fakes, g_losses, values)
        losses = [torch.stack(g_losses)] + ([] if d_losses is None else [torch.stack(d_losses)])
        optimizers = [[step.optimizer] + ([] if d_losses is None else [step.d_optimizer]) for step in self.steps]
        found_inf = (~torch.isfinite(torch.stack(losses))).any(dim=0).float()  # one 0-dim view per member
        for i, loss in enumerate(losses):
            for member in optimizers:
                member[i].zero_grad(set_to_none=True)
            loss.sum().backward()
        for step, member, found in zip(self.steps, optimizers, found_inf.unbind(0)):
            step.check_gradients(member, found)
        skipped = found_inf > 0
        for step, member, found in zip(self.steps, optimizers, found_inf.unbind(0)):
            step.update(member, found)
        with torch.no_grad():
            for old, members in zip(saved, self.buffers):
                kept = torch.where(skipped.view(-1, *(1,) * (old.dim() - 1)), old, torch.stack(members))
                torch._foreach_copy_(list(members), list(kept.unbind(0)))
            for step, skip in zip(self.steps, skipped.unbind(0)):
                if step.ema is not None:
                    step.ema.update(step.model.decoder, skip)
        logged = {key: torch.stack([vals[key] for vals in values]).detach().float() for key in values[0]}
        return StepOutput({**logged, "loss": losses[0].detach().float()}, skipped=skipped)

    def _augmented(self, images: torch.Tensor) -> torch.Tensor:
        """Each member's rows of a member-major batch through its `loss.d_augment`, drawn from its own stream."""
        if all(cfg.d_augment == "off" for cfg in self.losses):
            return images
        return torch.cat([self.random.draw(k, diff_augment, rows, cfg.d_augment)
                          for k, (rows, cfg) in enumerate(zip(images.chunk(self.members), self.losses))])

    def _adversarial_losses(self, x, y, fakes, g_losses, values):
        """(each member's E/G loss with its GAN and feature terms added, each member's D loss)."""
        k, discriminator = self.members, self.model.discriminator
        fake = member_cat(fakes, k)
        y_fake = None if y is None else member_cat([y] * len(fakes), k)
        fake_rows, real_rows = len(fake) // k, len(x) // k
        matching, classify = self.losses[0].feature_weight > 0, self.losses[0].class_weight > 0
        labels = [None] * k if y is None else member_rows(y, k)
        prior_class_logits = [None] * k
        discriminator.requires_grad_(False)  # E/G's loss needs gradients through D, not for D's weights
        try:
            if matching:
                y_both = None if y is None else member_cat([y_fake, y], k)
                logits, features = discriminator(member_cat([fake, x], k), y_both, return_features=True)
                fake_logits = member_rows(logits, k, 0, fake_rows)
            else:
                logits, features = discriminator(self._augmented(fake), y_fake, return_features=True)
                fake_logits = list(logits.chunk(k))
            if classify:  # each member's prior samples: the last real_rows of its fakes
                prior = torch.cat(member_rows(features[-1], k, fake_rows - real_rows, fake_rows))
                prior_class_logits = list(discriminator.class_logits(prior).chunk(k))
        finally:
            discriminator.requires_grad_(True)
        for member, cfg in enumerate(self.losses):
            fake_features = real_features = None
            if matching:
                fake_features = [member_rows(f, k, 0, real_rows)[member] for f in features]
                real_features = [member_rows(f, k, fake_rows)[member] for f in features]
            g_losses[member] = g_losses[member] + generator_terms(
                fake_logits[member], fake_features, real_features, prior_class_logits[member], labels[member], cfg,
                values[member])
        y_all = None if y is None else member_cat([y, y_fake], k)
        logits, features = discriminator(self._augmented(member_cat([x, fake.detach()], k)), y_all,
                                         return_features=True)
        real_class_logits = [None] * k
        if classify:
            real = torch.cat(member_rows(features[-1], k, 0, real_rows))
            real_class_logits = list(discriminator.class_logits(real).chunk(k))
        real_logits, fake_logits = member_rows(logits, k, 0, real_rows), member_rows(logits, k, real_rows)
        d_losses = [discriminator_terms(*member) for member in zip(real_logits, fake_logits, real_class_logits, labels,
                                                                   self.losses, values)]
        return g_losses, d_losses
