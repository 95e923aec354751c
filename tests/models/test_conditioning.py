"""The label's ways into G (concat, conditional BatchNorm), the class prior and the resize upsampling."""

import pytest
import torch
from torch import nn

from vaegan.config import ModelConfig, load_preset
from vaegan.models import build_model
from vaegan.models.conditioning import ClassBatchNorm2d
from vaegan.objectives import kl_divergence


def _cfg(**kw) -> ModelConfig:
    return ModelConfig(**{"name": "vaegan", "latent_dim": 8, "channels": 8, "d_channels": 8, "embed_dim": 4,
                          "conditional": True, **kw})


@pytest.mark.parametrize("preset,parameters,keys", [("cvaegan-cifar100", 9_501_508, 71),
                                                     ("vae-cifar10-regularized", 8_540_035, 50),
                                                     ("gan-cifar100", 4_762_436, 45)])
def test_the_faithful_presets_build_the_reference_networks_unchanged(preset, parameters, keys):
    """Parameter and state_dict entry counts as before the quality options existed."""
    model = build_model(load_preset(preset).model, num_classes=100)
    assert sum(p.numel() for p in model.parameters()) == parameters and len(model.state_dict()) == keys
    assert model.prior_mean is None
    assert not any(isinstance(m, (ClassBatchNorm2d, nn.Upsample)) for m in model.modules())
    assert sum(isinstance(m, nn.ConvTranspose2d) and m.stride == (2, 2) for m in model.decoder.modules()) == 3


def test_class_batchnorm_starts_as_plain_batchnorm_and_its_label_scales_and_shifts_channels():
    torch.manual_seed(0)
    layer, plain = ClassBatchNorm2d(6, 4), nn.BatchNorm2d(6)
    x, label = torch.randn(5, 6, 3, 3), torch.randn(5, 4)
    assert torch.allclose(layer(x, label), plain(x), atol=1e-6)
    nn.init.normal_(layer.scale.weight)
    nn.init.normal_(layer.shift.weight)
    out = layer(x, label)
    gain, bias = 1 + layer.scale(label), layer.shift(label)
    assert torch.allclose(out, plain(x) * gain[:, :, None, None] + bias[:, :, None, None], atol=1e-5)


@pytest.mark.parametrize("arch", ["conv", "resnet"])
def test_with_class_norm_the_label_reaches_every_normalised_layer_of_g(arch):
    """With the label's columns of G's first layer zeroed, only the conditional BatchNorm layers see the label:
    the image still depends on it, and every such layer got a gradient from it (eval mode: BatchNorm's batch
    statistics would mix the two images)."""
    torch.manual_seed(0)
    model = build_model(_cfg(arch=arch, class_norm=True), num_classes=10).eval()
    layers = [m for m in model.decoder.modules() if isinstance(m, ClassBatchNorm2d)]
    assert len(layers) == (3 if arch == "conv" else 7)
    for layer in layers:
        nn.init.normal_(layer.scale.weight, std=0.5)
    with torch.no_grad():
        model.decoder.project.weight[:, 8:] = 0
    z = torch.randn(2, 8)
    a, b = model.decoder(z, torch.tensor([3, 3])), model.decoder(z, torch.tensor([3, 4]))
    assert torch.equal(a[0], b[0]) and not torch.allclose(a[1], b[1])
    b.sum().backward()
    assert all(layer.scale.weight.grad.abs().sum() > 0 for layer in layers)
    assert model.decoder(z, model.embed_labels(torch.tensor([3, 4]))).shape == (2, 3, 32, 32)  # label paths


def test_resize_upsampling_replaces_the_overlapping_transposed_convolutions():
    model = build_model(_cfg(upsample="resize"), num_classes=10)
    assert not any(isinstance(m, nn.ConvTranspose2d) and m.stride == (2, 2) for m in model.decoder.modules())
    assert sum(isinstance(m, nn.Upsample) for m in model.decoder.modules()) == 3
    assert model.sample(3, torch.tensor([0, 1, 2])).shape == (3, 3, 32, 32)


def test_a_class_prior_moves_samples_and_the_kl_to_each_class_mean():
    torch.manual_seed(0)
    model = build_model(_cfg(prior="class"), num_classes=10).eval()
    assert model.prior_mean.weight.abs().sum() == 0  # starts as N(0, I)
    assert any(p is model.prior_mean.weight for p in model.autoencoder_parameters())
    nn.init.normal_(model.prior_mean.weight)
    y, z = torch.tensor([1, 2]), torch.randn(2, 8)
    with torch.no_grad():
        assert torch.equal(model.generate(z, y), model.decoder(z + model.prior_mean(y), y))
        mu = model.prior_mean(y) + 0.5
    logvar = torch.zeros_like(mu)
    assert torch.allclose(kl_divergence(model.posterior_offset(mu, y), logvar), torch.full((2,), 0.5 * 8 * 0.25))
    assert model.with_decoder(model.decoder).prior_mean is model.prior_mean  # the EMA view keeps the prior


def test_an_unconditional_model_cannot_have_a_class_prior():
    from vaegan.models import GenerativeModel

    with pytest.raises(ValueError, match="class prior needs a conditional model"):
        GenerativeModel(nn.Identity(), latent_dim=8, class_prior=True)


def test_the_discriminator_class_head_exists_only_when_asked_and_classifies_from_its_pooled_features():
    plain = build_model(_cfg(), num_classes=10).discriminator
    assert plain.classifier is None
    with pytest.raises(ValueError, match="no class head"):
        plain.class_logits(torch.zeros(2, 32, 4, 4))
    model = build_model(_cfg(d_classifier=True), num_classes=10).eval()
    d = model.discriminator
    extra = sum(p.numel() for p in model.parameters()) - sum(p.numel() for p in plain.parameters()) - sum(
        p.numel() for p in model.decoder.parameters()) - sum(p.numel() for p in model.encoder.parameters())
    assert extra == d.features.out_channels * 10 + 10  # one linear layer, nothing else
    x = torch.rand(3, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        _, activations = d(x, torch.tensor([0, 1, 2]), return_features=True)
        classes = d.class_logits(activations[-1])
    assert classes.shape == (3, 10)
    torch.testing.assert_close(classes, d.classifier(activations[-1].sum(dim=(2, 3))))
