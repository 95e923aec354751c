"""Adversarial losses on raw discriminator logits.

Non-saturating (Goodfellow et al. 2014): D minimises softplus(-real) + softplus(fake), i.e. the binary
cross-entropy with real = 1, fake = 0; G minimises softplus(-fake) = -log sigmoid(fake), whose gradient does
not vanish when D rejects the samples confidently. Hinge (Lim & Ye 2017; Miyato et al. 2018): D minimises
relu(1 - real) + relu(1 + fake); G minimises -fake. All losses are means over the batch.

Feature matching (Larsen et al. 2016's learned similarity): the reconstruction is also compared with the real
image in the discriminator's intermediate features, a perceptual loss that needs no pretrained network.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

GAN_LOSSES = ("ns", "hinge")


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor, kind: str = "ns") -> torch.Tensor:
    if kind == "ns":
        return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()
    if kind == "hinge":
        return F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean()
    raise ValueError(f"unknown GAN loss {kind!r}; choose one of {GAN_LOSSES}")


def generator_loss(fake_logits: torch.Tensor, kind: str = "ns") -> torch.Tensor:
    if kind == "ns":
        return F.softplus(-fake_logits).mean()
    if kind == "hinge":
        return -fake_logits.mean()
    raise ValueError(f"unknown GAN loss {kind!r}; choose one of {GAN_LOSSES}")


def feature_matching_loss(fake_features: list[torch.Tensor], real_features: list[torch.Tensor]) -> torch.Tensor:
    """Mean squared difference per layer, summed over layers; the real features are treated as constants."""
    return sum(F.mse_loss(fake, real.detach()) for fake, real in zip(fake_features, real_features, strict=True))
