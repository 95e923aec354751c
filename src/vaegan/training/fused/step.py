"""One optimisation step of K fused runs: TrainStep's losses per member, one forward and backward for all."""

from __future__ import annotations

import torch

from vaegan.config import LossConfig
from vaegan.models import GenerativeModel
from vaegan.objectives.perceptual import PerceptualLoss
from vaegan.speed import SpeedSettings, autocast
from vaegan.training.ema import GeneratorEMA
from vaegan.training.fused.adam import MemberAdam
from vaegan.training.step import StepOutput, autoencoder_terms, discriminator_terms, generator_terms


def member_cat(tensors: list[torch.Tensor], members: int) -> torch.Tensor:
    """Concatenate member-major batches member by member: member k's rows of each tensor, in order."""
    return torch.cat([t.unflatten(0, (members, -1)) for t in tensors], dim=1).flatten(0, 1)


def member_rows(t: torch.Tensor, members: int, start: int = 0, stop: int | None = None) -> list[torch.Tensor]:
    """Each member's rows start..stop of a member-major batch."""
    return list(t.unflatten(0, (members, -1))[:, start:stop])


class FusedStep:
    """TrainStep for a fused model (see vaegan.training.step.TrainStep for what a step computes).

    Member k's losses are computed on its rows with its own LossConfig; the sum of the members' losses is
    differentiated, so each member's gradients are its own. Values and the skip flag come back with one entry
    per member, and a member whose loss or gradient is not finite is skipped alone: its weights, optimiser
    state, buffers and EMA stay as they were while the others update.
    """

    def __init__(self, model: GenerativeModel, optimizer: MemberAdam, losses: list[LossConfig], *,
                 d_optimizer: MemberAdam | None = None, ema: GeneratorEMA | None = None,
                 perceptual: PerceptualLoss | None = None, speed: SpeedSettings | None = None):
        self.model, self.optimizer, self.d_optimizer = model, optimizer, d_optimizer
        self.losses, self.ema, self.perceptual = losses, ema, perceptual
        self.speed = speed or SpeedSettings()
        self.members = len(losses)

    def __call__(self, x: torch.Tensor, y: torch.Tensor | None = None, *, adversarial: bool = True) -> StepOutput:
        model, k = self.model, self.members
        model.train()
        y = model.labels(y)
        buffers = [b.clone() for b in model.buffers()]
        values: list[dict[str, torch.Tensor]] = [{} for _ in range(k)]
        with autocast(self.speed.precision, x.device):
            g_losses = [x.new_zeros(())] * k
            fakes = []
            if model.encoder is not None:
                x_hat, mu, logvar = model(x, y)
                g_losses = [autoencoder_terms(*rows, cfg, self.perceptual, vals) for *rows, cfg, vals in zip(
                    *(t.chunk(k) for t in (x_hat, x, mu, logvar)), self.losses, values)]
                if self.losses[0].d_on_recon:
                    fakes.append(x_hat)
            d_losses = None
            if adversarial and model.discriminator is not None:
                if self.losses[0].d_on_prior or model.encoder is None:
                    fakes.append(model.sample(len(x), y))
                g_losses, d_losses = self._adversarial_losses(x, y, fakes, g_losses, values)
        g_loss = torch.stack(g_losses)
        losses = [g_loss] if d_losses is None else [g_loss, torch.stack(d_losses)]
        optimizers = [self.optimizer] if d_losses is None else [self.optimizer, self.d_optimizer]
        skipped = ~torch.isfinite(torch.stack(losses)).all(dim=0)
        for optimizer, loss in zip(optimizers, losses):
            optimizer.zero_grad()
            loss.sum().backward()
        grads = [p.grad for optimizer in optimizers for p in optimizer.params if p.grad is not None]
        skipped = skipped | ~torch.stack([g.flatten(1).isfinite().all(dim=1) for g in grads]).all(dim=0)
        for optimizer in optimizers:
            optimizer.step(skipped)
        with torch.no_grad():
            for saved, live in zip(buffers, model.buffers(), strict=True):
                live.copy_(torch.where(skipped.view(-1, *(1,) * (live.dim() - 1)), saved, live))
        if self.ema is not None:
            self.ema.update(model.decoder, skipped)
        stacked = {key: torch.stack([vals[key] for vals in values]).detach().float() for key in values[0]}
        return StepOutput({**stacked, "loss": g_loss.detach().float()}, skipped=skipped)

    def _adversarial_losses(self, x, y, fakes, g_losses, values):
        """(each member's E/G loss with its GAN and feature terms added, each member's D loss)."""
        k, discriminator = self.members, self.model.discriminator
        fake = member_cat(fakes, k)
        y_fake = None if y is None else member_cat([y] * len(fakes), k)
        fake_rows, real_rows = len(fake) // k, len(x) // k
        features = None
        discriminator.requires_grad_(False)  # E/G's loss needs gradients through D, not for D's weights
        try:
            if self.losses[0].feature_weight > 0:
                y_both = None if y is None else member_cat([y_fake, y], k)
                logits, features = discriminator(member_cat([fake, x], k), y_both, return_features=True)
                fake_logits = member_rows(logits, k, 0, fake_rows)
            else:
                fake_logits = list(discriminator(fake, y_fake).chunk(k))
        finally:
            discriminator.requires_grad_(True)
        for member, cfg in enumerate(self.losses):
            fake_features = real_features = None
            if features is not None:
                fake_features = [member_rows(f, k, 0, real_rows)[member] for f in features]
                real_features = [member_rows(f, k, fake_rows)[member] for f in features]
            g_losses[member] = g_losses[member] + generator_terms(fake_logits[member], fake_features, real_features,
                                                                  cfg, values[member])
        y_all = None if y is None else member_cat([y, y_fake], k)
        logits = discriminator(member_cat([x, fake.detach()], k), y_all)
        real_logits, fake_logits = member_rows(logits, k, 0, real_rows), member_rows(logits, k, real_rows)
        d_losses = [discriminator_terms(real, fake, cfg, vals)
                    for real, fake, cfg, vals in zip(real_logits, fake_logits, self.losses, values)]
        return g_losses, d_losses
