"""DiffAugment's transforms, and that the step applies them to what D sees only."""

import pytest
import torch

from vaegan.config import LossConfig, ModelConfig
from vaegan.models import build_model
from vaegan.objectives import diffaugment
from vaegan.objectives.diffaugment import TRANSFORMS, diff_augment
from vaegan.training import TrainStep, build_adam


def images(n: int = 6) -> torch.Tensor:
    return torch.rand(n, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1


@pytest.mark.parametrize("name", sorted(TRANSFORMS))
def test_each_transform_keeps_the_shape_passes_gradients_and_varies_per_image(name):
    torch.manual_seed(0)
    x = images().requires_grad_()
    out = diff_augment(x, name)
    assert out.shape == x.shape and not torch.equal(out, x)
    out.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    same = images(1).repeat(6, 1, 1, 1)
    augmented = diff_augment(same, name)
    assert not all(torch.equal(augmented[0], a) for a in augmented[1:])  # each image draws its own parameters


def test_off_is_the_identity_and_an_unknown_transform_is_refused():
    x = images()
    assert diff_augment(x, "off") is x
    with pytest.raises(ValueError, match="unknown DiffAugment transform 'rotate'"):
        diff_augment(x, "rotate")


def test_cutout_zeroes_a_square_of_half_the_side_at_most_and_translation_shifts_by_at_most_an_eighth():
    torch.manual_seed(1)
    x = torch.ones(64, 3, 32, 32)
    zeroed = (diff_augment(x, "cutout") == 0).all(dim=1).flatten(1).sum(1)
    assert zeroed.max() == 16 * 16 and zeroed.min() > 0
    ramp = torch.arange(32.0).expand(64, 3, 32, 32).contiguous()  # column index as the value
    shifted = diff_augment(ramp, "translation")
    middle = shifted[:, 0, 16, 16] - 16  # how far the image moved
    assert middle.abs().max() <= 4 and len(middle.unique()) > 3


def test_the_step_augments_every_image_d_sees_and_no_image_the_reconstruction_loss_sees(monkeypatch):
    """D's inputs in G's pass and in D's pass go through the policy; the logged reconstruction terms are those of
    the same step without augmentation."""
    seen = []

    def recording(x, policy):
        seen.append((x.detach().clone(), policy))
        return diffaugment.diff_augment(x, policy)

    monkeypatch.setattr("vaegan.training.step.diff_augment", recording)
    values = {}
    for policy in ("off", "translation"):
        torch.manual_seed(0)
        model = build_model(ModelConfig(name="vaegan", latent_dim=8, channels=8, d_channels=8, embed_dim=4,
                                        conditional=True), num_classes=10)
        optimizer = build_adam(model.autoencoder_parameters(), 1e-3, 0.0, (0.5, 0.999))
        d_optimizer = build_adam(model.discriminator.parameters(), 1e-3, 0.0, (0.5, 0.999))
        step = TrainStep(model, optimizer, LossConfig(d_augment=policy), d_optimizer=d_optimizer)
        x, y = images(4), torch.tensor([0, 1, 2, 3])
        values[policy] = step(x, y).values
    calls = seen[2:]  # the translation step's
    assert [policy for _, policy in calls] == ["translation", "translation"]
    assert calls[0][0].shape[0] == 8 and torch.equal(calls[1][0][:4], images(4))  # the fakes; then reals + fakes
    for key in ("recon", "kl", "mse_per_pixel"):
        assert values["off"][key] == values["translation"][key]
    assert values["off"]["d_loss"] != values["translation"]["d_loss"]
