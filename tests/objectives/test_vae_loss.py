import math

import pytest
import torch

from vaegan.objectives import kl_divergence, vae_loss


def test_kl_matches_the_closed_form_of_two_gaussians():
    torch.manual_seed(0)
    mu, logvar = torch.randn(6, 5), torch.randn(6, 5)
    expected = torch.zeros(6)
    for i in range(6):
        for j in range(5):
            m, s2 = mu[i, j].item(), math.exp(logvar[i, j].item())
            expected[i] += math.log(1 / math.sqrt(s2)) + (s2 + m * m) / 2 - 0.5
    assert torch.allclose(kl_divergence(mu, logvar), expected, atol=1e-5)


def test_kl_matches_torch_distributions():
    torch.manual_seed(1)
    mu, logvar = torch.randn(4, 7), torch.randn(4, 7)
    q = torch.distributions.Normal(mu, torch.exp(0.5 * logvar))
    p = torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))
    assert torch.allclose(kl_divergence(mu, logvar), torch.distributions.kl_divergence(q, p).sum(1), atol=1e-5)


def test_kl_is_zero_at_the_prior():
    assert torch.equal(kl_divergence(torch.zeros(2, 3), torch.zeros(2, 3)), torch.zeros(2))


def test_reduction_sum_over_pixels_mean_over_batch_and_beta_scaling():
    x = torch.zeros(2, 3, 32, 32)
    x_hat = torch.zeros(2, 3, 32, 32)
    x_hat[0] = 0.5  # image 0: squared error 0.25 on each of 3072 pixels; image 1: exact
    mu, logvar = torch.ones(2, 4), torch.zeros(2, 4)  # KL = 0.5 * 4 = 2 per image
    out = vae_loss(x_hat, x, mu, logvar, beta=4.0)
    assert out.recon.item() == pytest.approx(0.25 * 3072 / 2)
    assert out.kl.item() == pytest.approx(2.0)
    assert out.loss.item() == pytest.approx(0.25 * 3072 / 2 + 4.0 * 2.0)
    assert out.mse_per_pixel.item() == pytest.approx(0.25 / 2)


def test_mean_reduction_takes_per_pixel_and_per_latent_dimension_means():
    x, x_hat = torch.zeros(2, 3, 32, 32), torch.zeros(2, 3, 32, 32)
    x_hat[0] = 0.5
    mu, logvar = torch.ones(2, 4), torch.zeros(2, 4)
    out = vae_loss(x_hat, x, mu, logvar, beta=0.2, reduction="mean")
    assert out.recon.item() == pytest.approx(0.25 / 2) == out.mse_per_pixel.item()
    assert out.recon.item() == pytest.approx(torch.nn.functional.mse_loss(x_hat, x).item())
    assert out.kl.item() == pytest.approx(0.5)  # 2 nats per image over 4 dimensions
    assert out.loss.item() == pytest.approx(0.125 + 0.2 * 0.5)
    with pytest.raises(ValueError, match="reduction"):
        vae_loss(x_hat, x, mu, logvar, reduction="median")
