"""One optimisation step of the VAE; the trainer and the throughput benchmark share it."""

from __future__ import annotations

import torch
from torch import nn

from vaegan.objectives import vae_loss
from vaegan.training.performance import SpeedSettings, align_optimizer_state, to_input_layout


def build_adam(params, lr: float, weight_decay: float, betas: tuple[float, float], *,
               fused: bool | None = None, foreach: bool | None = None) -> torch.optim.Adam:
    """Adam with L2 weight decay (as in the reference: `Adam(weight_decay=1e-4)`, not AdamW).

    `fused`/`foreach` pick the implementation (None: torch's default, which is the per-tensor loop on CPU);
    all compute the same update. Loading a state_dict re-lays the state out like the parameters (see
    `align_optimizer_state`), so checkpoints move between channels_last and plain runs safely.
    """
    optimizer = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, betas=betas, fused=fused,
                                 foreach=foreach)
    optimizer.register_load_state_dict_post_hook(align_optimizer_state)
    return optimizer


def _forward_loss(model: nn.Module, x: torch.Tensor, beta: float) -> tuple[torch.Tensor, ...]:
    x_hat, mu, logvar = model(x)
    out = vae_loss(x_hat, x, mu, logvar, beta)
    return out.loss, out.recon, out.kl, out.mse_per_pixel


class VAETrainStep:
    """Forward, loss, backward and update for one batch; returns the logged values as detached tensors.

    `speed` (optional) puts each batch in the model's memory format (a no-op for batches that already are) and,
    with `speed.compile`, runs the forward pass + loss through torch.compile; the first call compiles, and a
    new batch shape (e.g. a smaller last batch) compiles once more. The model-side settings are applied by
    `apply_speed_settings` before the optimiser is built, not here.
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, beta: float, *,
                 speed: SpeedSettings | None = None):
        self.model = model
        self.optimizer = optimizer
        self.beta = beta
        self.speed = speed or SpeedSettings()
        self._forward_loss = torch.compile(_forward_loss) if self.speed.compile else _forward_loss

    def __call__(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        self.model.train()
        x = to_input_layout(x, self.speed)
        loss, recon, kl, mse_per_pixel = self._forward_loss(self.model, x, self.beta)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return {"loss": loss.detach(), "recon": recon.detach(), "kl": kl.detach(),
                "mse_per_pixel": mse_per_pixel.detach()}
