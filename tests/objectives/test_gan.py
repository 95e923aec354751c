import math

import pytest
import torch

from vaegan.objectives.gan import discriminator_loss, feature_matching_loss, generator_loss

REAL = torch.tensor([2.0, -1.0, 0.5])
FAKE = torch.tensor([-3.0, 0.0, 1.5])


def _sigmoid(v: float) -> float:
    return 1 / (1 + math.exp(-v))


def test_non_saturating_losses_match_their_formulas():
    d_expected = (sum(-math.log(_sigmoid(r)) for r in REAL.tolist()) / 3
                  + sum(-math.log(1 - _sigmoid(f)) for f in FAKE.tolist()) / 3)
    g_expected = sum(-math.log(_sigmoid(f)) for f in FAKE.tolist()) / 3
    assert discriminator_loss(REAL, FAKE, "ns").item() == pytest.approx(d_expected, rel=1e-6)
    assert generator_loss(FAKE, "ns").item() == pytest.approx(g_expected, rel=1e-6)


def test_hinge_losses_match_their_formulas():
    d_expected = (sum(max(0, 1 - r) for r in REAL.tolist()) + sum(max(0, 1 + f) for f in FAKE.tolist())) / 3
    assert discriminator_loss(REAL, FAKE, "hinge").item() == pytest.approx(d_expected)
    assert generator_loss(FAKE, "hinge").item() == pytest.approx(-FAKE.mean().item())


def test_non_saturating_generator_gradient_does_not_vanish_when_d_is_confident():
    fake = torch.tensor([-10.0], requires_grad=True)
    generator_loss(fake, "ns").backward()
    assert fake.grad.abs().item() > 0.99  # the saturating log(1 - D) would give ~4.5e-5


def test_unknown_loss_kind():
    with pytest.raises(ValueError, match="hinge"):
        generator_loss(FAKE, "wgan")


def test_feature_matching_sums_per_layer_mean_squares_and_stops_gradients_at_the_real_features():
    fake = [torch.tensor([[1.0, 2.0]], requires_grad=True), torch.tensor([[[0.0]], [[3.0]]], requires_grad=True)]
    real = [torch.tensor([[0.0, 0.0]], requires_grad=True), torch.tensor([[[1.0]], [[1.0]]], requires_grad=True)]
    loss = feature_matching_loss(fake, real)
    assert loss.item() == pytest.approx((1 + 4) / 2 + (1 + 4) / 2)
    loss.backward()
    assert fake[0].grad is not None and real[0].grad is None
