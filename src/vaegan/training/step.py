"""One optimisation step for every model family; the trainer and the throughput benchmark share it."""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from vaegan.config import LossConfig
from vaegan.models import GenerativeModel
from vaegan.objectives import discriminator_loss, feature_matching_loss, generator_loss, vae_loss
from vaegan.objectives.diffaugment import diff_augment
from vaegan.objectives.perceptual import PerceptualLoss
from vaegan.speed import SpeedSettings, autocast, to_input_layout
from vaegan.training import distributed
from vaegan.training.distributed import Ranks
from vaegan.training.ema import GeneratorEMA

log = logging.getLogger(__name__)


def autoencoder_terms(x_hat: torch.Tensor, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, cfg: LossConfig,
                      perceptual: PerceptualLoss | None, values: dict[str, torch.Tensor]) -> torch.Tensor:
    """The VAE loss plus the weighted perceptual term of one run's batch; fills the logged values."""
    out = vae_loss(x_hat.float(), x, mu.float(), logvar.float(), cfg.beta, cfg.reduction)  # fp32 under autocast
    values.update(recon=out.recon, kl=out.kl, mse_per_pixel=out.mse_per_pixel)
    loss = out.loss
    if perceptual is not None:
        values["perceptual"] = perceptual(x_hat, x)
        loss = loss + cfg.perceptual_weight * values["perceptual"]
    return loss


def generator_terms(fake_logits: torch.Tensor, fake_features: list[torch.Tensor] | None,
                    real_features: list[torch.Tensor] | None, prior_class_logits: torch.Tensor | None,
                    y: torch.Tensor | None, cfg: LossConfig, values: dict[str, torch.Tensor]) -> torch.Tensor:
    """E/G's weighted GAN term (and feature matching of the reconstructions' D features with the reals', and
    D's class head on the prior samples against their labels); fills the logged values."""
    values["gan"] = generator_loss(fake_logits.float(), cfg.gan_loss)
    terms = cfg.gan_weight * values["gan"]
    if fake_features is not None:
        values["feature"] = feature_matching_loss([f.float() for f in fake_features],
                                                  [f.float() for f in real_features])
        terms = terms + cfg.feature_weight * values["feature"]
    if prior_class_logits is not None:
        values["class"] = F.cross_entropy(prior_class_logits.float(), y)
        terms = terms + cfg.class_weight * values["class"]
    return terms


def discriminator_terms(real_logits: torch.Tensor, fake_logits: torch.Tensor, real_class_logits: torch.Tensor | None,
                        y: torch.Tensor | None, cfg: LossConfig, values: dict[str, torch.Tensor]) -> torch.Tensor:
    """D's loss (with its class head's cross-entropy on the real images, where it has one); fills the logged
    values."""
    real_logits, fake_logits = real_logits.float(), fake_logits.float()
    d_loss = discriminator_loss(real_logits, fake_logits, cfg.gan_loss)
    values.update(d_loss=d_loss, d_real=real_logits.mean(), d_fake=fake_logits.mean())
    if real_class_logits is not None:
        values["d_class"] = F.cross_entropy(real_class_logits.float(), y)
        d_loss = d_loss + values["d_class"]
    return d_loss


# The step skips on the device through two private torch protocols that GradScaler uses. A torch release that
# changed either would silently stop skipping bad steps, so each is probed once per process on a one-element
# tensor; where one does not hold, the step uses public operations and one host sync instead, with one warning.


@functools.cache
def non_finite_check_works(device: torch.device) -> bool:
    """Whether `torch._amp_foreach_non_finite_check_and_unscale_` sets found_inf for a NaN gradient on `device`
    and leaves a finite one as it was (scale 1)."""
    try:
        grads = [torch.tensor([float("nan")], device=device), torch.tensor([2.0], device=device)]
        found_inf = torch.zeros((), device=device)
        torch._amp_foreach_non_finite_check_and_unscale_(grads, found_inf, torch.ones_like(found_inf))
        works = found_inf.item() == 1 and grads[1].item() == 2.0
    except (AttributeError, RuntimeError, TypeError):
        works = False
    if not works:
        log.warning("torch %s: the private non-finite gradient check does not work as expected on %s; checking "
                    "gradients with public operations instead", torch.__version__, device)
    return works


def skips_on_found_inf(optimizer: torch.optim.Optimizer) -> bool:
    """Whether `step()` takes GradScaler's `found_inf` tensor (fused Adam advertises it) and, as probed for its
    class, device and implementation, really updates on 0 and leaves parameter and state as they were on 1."""
    if not getattr(optimizer, "_step_supports_amp_scaling", False):
        return False
    return found_inf_skip_works(type(optimizer), optimizer.param_groups[0]["params"][0].device,
                                optimizer.defaults.get("fused"), optimizer.defaults.get("foreach"))


@functools.cache
def found_inf_skip_works(cls: type, device: torch.device, fused: bool | None, foreach: bool | None) -> bool:
    param = torch.zeros(1, device=device, requires_grad=True)
    param.grad = torch.ones_like(param)
    try:
        probe = cls([param], lr=0.1, fused=fused, foreach=foreach)
        for found in (0.0, 1.0):
            before = [param.detach().clone(), *(v.clone() for v in probe.state[param].values() if torch.is_tensor(v))]
            probe.found_inf, probe.grad_scale = torch.tensor(found, device=device), None
            probe.step()
            after = [param.detach(), *(v for v in probe.state[param].values() if torch.is_tensor(v))]
            works = (len(before) == len(after) and all(map(torch.equal, before, after))) == bool(found)
            if not works:
                break
    except (RuntimeError, TypeError, ValueError):
        works = False
    if not works:
        log.warning("torch %s: %s on %s does not skip its step on found_inf as expected; non-finite steps are "
                    "skipped after one host sync instead", torch.__version__, cls.__name__, device)
    return works


@dataclass
class StepOutput:
    values: dict[str, torch.Tensor]  # the logged values: detached fp32 scalars on the step's device
    skipped: torch.Tensor  # bool scalar on the device: a loss or gradient was not finite, nothing was updated


class TrainStep:
    """Forward, losses, backward and updates for one batch.

    E/G minimise recon + beta*KL (+ perceptual_weight * perceptual) + gan_weight*GAN (+ feature_weight * feature
    matching, + class_weight * D's class cross-entropy on the prior samples); D minimises its GAN
    loss on real images against reconstructions and/or prior samples G(z, y) (z ~ N(0, I), the batch's labels),
    all of them through `loss.d_augment`'s augmentations wherever D sees them (+ its class cross-entropy on the
    real images).
    Both losses and both gradients are computed from the same weights before either optimiser steps
    (simultaneous updates), so a non-finite loss or gradient can skip the whole step: no weight, optimiser
    state or buffer (BatchNorm statistics, spectral-norm vectors) changes. With `adversarial=False` (VAE
    warm-up) D is neither run nor updated.

    The step never waits for the device: the non-finite decision stays a device tensor (`found_inf`), which
    fused Adam reads to skip its own update (the mechanism GradScaler uses) and which selects the old or new
    buffers and EMA weights. Optimisers without that support (Adam without `fused`), or a torch whose private
    protocols no longer behave as probed (see above), need one host sync.

    `speed` puts each batch in the model's memory format and, with `precision=bf16`, runs forward and losses
    under bf16 autocast (losses in fp32). Model-side settings (compile included) are applied by
    `build_training` before the optimisers are built, not here.
    """

    def __init__(self, model: GenerativeModel, optimizer: torch.optim.Optimizer, loss: LossConfig, *,
                 d_optimizer: torch.optim.Optimizer | None = None, ema: GeneratorEMA | None = None,
                 perceptual: PerceptualLoss | None = None, speed: SpeedSettings | None = None,
                 ranks: Ranks = Ranks()):
        if model.discriminator is not None and d_optimizer is None:
            raise ValueError("a model with a discriminator needs d_optimizer")
        self.model, self.optimizer, self.d_optimizer = model, optimizer, d_optimizer
        self.loss_cfg, self.ema, self.perceptual = loss, ema, perceptual
        self.speed = speed or SpeedSettings()
        self.ranks = ranks
        # The private protocols are probed here, once per process, so that no probe syncs inside a step.
        self.device_check = non_finite_check_works(next(model.parameters()).device)
        self.skips_on_device = {opt: skips_on_found_inf(opt) for opt in (optimizer, d_optimizer) if opt is not None}

    def __call__(self, x: torch.Tensor, y: torch.Tensor | None = None, *, adversarial: bool = True
                 ) -> StepOutput:
        model, cfg = self.model, self.loss_cfg
        model.train()
        x, y = to_input_layout(x, self.speed), model.labels(y)
        buffers = [b.clone() for b in model.buffers()]
        values: dict[str, torch.Tensor] = {}
        with autocast(self.speed.precision, x.device):
            g_loss = x.new_zeros(())
            fakes = []
            if model.encoder is not None:
                x_hat, mu, logvar = model(x, y)
                g_loss = autoencoder_terms(x_hat, x, model.posterior_offset(mu, y), logvar, cfg, self.perceptual,
                                           values)
                if cfg.d_on_recon:
                    fakes.append(x_hat)
            d_loss = None
            if adversarial and model.discriminator is not None:
                if cfg.d_on_prior or model.encoder is None:
                    fakes.append(to_input_layout(model.sample(len(x), y), self.speed))
                g_loss, d_loss = self._adversarial_losses(x, y, fakes, g_loss, values)
        values["loss"] = g_loss
        losses = [g_loss] if d_loss is None else [g_loss, d_loss]
        optimizers = [self.optimizer] if d_loss is None else [self.optimizer, self.d_optimizer]
        found_inf = (~torch.isfinite(torch.stack(losses)).all()).float()  # 0-dim, as GradScaler's
        for optimizer, loss in zip(optimizers, losses):
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
        if self.ranks.distributed:  # gradients, BatchNorm statistics and the loss check, averaged over the ranks
            distributed.average_step(optimizers, model, found_inf, self.ranks.world_size)
        self.check_gradients(optimizers, found_inf)
        skipped = found_inf > 0
        self.update(optimizers, found_inf)
        with torch.no_grad():  # the saved buffers are the same on every rank, so a skip keeps the ranks equal
            for saved, live in zip(buffers, model.buffers(), strict=True):
                live.copy_(torch.where(skipped, saved, live))
        if self.ema is not None:
            self.ema.update(model.decoder, skipped)
        return StepOutput({k: v.detach().float() for k, v in values.items()}, skipped=skipped)

    def check_gradients(self, optimizers: list[torch.optim.Optimizer], found_inf: torch.Tensor) -> None:
        """Set `found_inf` to 1 where a gradient is not finite (a finite loss can have one). One fused kernel,
        the check GradScaler uses; it multiplies the gradients by exactly 1."""
        grads = [p.grad for optimizer in optimizers for group in optimizer.param_groups for p in group["params"]
                 if p.grad is not None]
        if not grads:
            return
        if self.device_check:
            torch._amp_foreach_non_finite_check_and_unscale_(grads, found_inf, torch.ones_like(found_inf))
        else:
            found_inf.copy_(torch.maximum(found_inf, (~torch.stack([g.isfinite().all() for g in grads]).all()).float()))

    def update(self, optimizers: list[torch.optim.Optimizer], found_inf: torch.Tensor) -> None:
        """Update unless `found_inf`: on the device where the optimisers support it, else after one sync."""
        if all(self.skips_on_device[optimizer] for optimizer in optimizers):
            for optimizer in optimizers:
                optimizer.found_inf, optimizer.grad_scale = found_inf, None
                try:
                    optimizer.step()
                finally:
                    del optimizer.found_inf, optimizer.grad_scale
        elif not found_inf.item():
            for optimizer in optimizers:
                optimizer.step()

    def _adversarial_losses(self, x, y, fakes, g_loss, values):
        """(E/G loss with the GAN and feature terms added, D loss); fills the logged D/G values."""
        cfg, discriminator = self.loss_cfg, self.model.discriminator
        fake = torch.cat(fakes)  # the prior samples, where D sees them, are its last len(x) rows
        y_fake = None if y is None else y.repeat(len(fakes))
        classify = cfg.class_weight > 0  # config checks: D has a class head and sees prior samples
        fake_features = real_features = prior_class_logits = None
        discriminator.requires_grad_(False)  # E/G's loss needs gradients through D, not for D's weights
        try:
            if cfg.feature_weight > 0:  # config checks: a vaegan whose D sees reconstructions
                y_both = None if y is None else torch.cat([y_fake, y])
                logits, features = discriminator(torch.cat([fake, x]), y_both, return_features=True)
                fake_logits = logits[:len(fake)]
                fake_features, real_features = [f[:len(x)] for f in features], [f[len(fake):] for f in features]
            else:
                fake_logits, features = discriminator(diff_augment(fake, cfg.d_augment), y_fake, return_features=True)
            if classify:
                prior_class_logits = discriminator.class_logits(features[-1][len(fake) - len(x):len(fake)])
        finally:
            discriminator.requires_grad_(True)
        g_loss = g_loss + generator_terms(fake_logits, fake_features, real_features, prior_class_logits, y, cfg,
                                          values)
        y_all = None if y is None else torch.cat([y, y_fake])
        logits, features = discriminator(diff_augment(torch.cat([x, fake.detach()]), cfg.d_augment), y_all,
                                         return_features=True)
        real_class_logits = discriminator.class_logits(features[-1][:len(x)]) if classify else None
        return g_loss, discriminator_terms(logits[:len(x)], logits[len(x):], real_class_logits, y, cfg, values)
