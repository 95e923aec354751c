import pytest
import torch

from vaegan.config import ModelConfig
from vaegan.models import build_model
from vaegan.models.conditioning import LabelConcat


def _cfg(**kw) -> ModelConfig:
    return ModelConfig(**{"latent_dim": 8, "channels": 8, "d_channels": 8, "embed_dim": 4, **kw})


@pytest.mark.parametrize("arch", ["conv", "resnet"])
@pytest.mark.parametrize("name,parts", [("vae", (True, False)), ("vaegan", (True, True)), ("gan", (False, True))])
@pytest.mark.parametrize("conditional", [True, False])
def test_each_family_has_its_parts_and_shapes(arch, name, parts, conditional):
    model = build_model(_cfg(name=name, arch=arch, conditional=conditional), num_classes=10)
    assert (model.encoder is not None, model.discriminator is not None) == parts
    assert model.num_classes == (10 if conditional else 0)
    x, y = torch.rand(4, 3, 32, 32) * 2 - 1, torch.tensor([0, 1, 2, 9])
    assert model.sample(4, y).shape == (4, 3, 32, 32)
    if model.encoder is not None:
        x_hat, mu, logvar = model(x, y)
        assert x_hat.shape == x.shape and mu.shape == logvar.shape == (4, 8)
    if model.discriminator is not None:
        assert model.discriminator(x, model.labels(y)).shape == (4,)


def test_number_of_classes_comes_from_the_dataset_and_only_when_conditional():
    assert build_model(_cfg(conditional=True), num_classes=100).decoder.label.embedding.num_embeddings == 100
    assert build_model(_cfg(conditional=False), num_classes=100).decoder.label.embedding is None


@pytest.mark.parametrize("arch", ["conv", "resnet"])
def test_the_label_changes_the_decoded_image_and_the_encoding(arch):
    torch.manual_seed(0)
    model = build_model(_cfg(name="vae", arch=arch, conditional=True), num_classes=10).eval()
    z, x = torch.randn(2, 8), torch.rand(2, 3, 32, 32)
    same, other = torch.tensor([3, 3]), torch.tensor([3, 4])
    with torch.no_grad():
        a, b = model.decoder(z, same), model.decoder(z, other)
        mu_a, _ = model.encoder(x, same)
        mu_b, _ = model.encoder(x, other)
    assert torch.equal(a[0], b[0]) and not torch.allclose(a[1], b[1])
    assert torch.equal(mu_a[0], mu_b[0]) and not torch.allclose(mu_a[1], mu_b[1])


def test_unconditional_networks_ignore_labels_and_conditional_ones_require_them():
    plain = build_model(_cfg(name="vae"), num_classes=10).eval()
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(plain(x, torch.tensor([1, 2]))[0], plain(x)[0])
    with pytest.raises(ValueError, match="needs labels"):
        LabelConcat(10, 4)(torch.zeros(2, 3), None)


def test_the_reference_vae_has_no_label_parameters_when_unconditional():
    assert not any("label" in k for k in build_model(ModelConfig(latent_dim=8, channels=8)).state_dict())
    conditional = build_model(ModelConfig(latent_dim=8, channels=8, embed_dim=4, conditional=True), 10).state_dict()
    assert conditional["encoder.label.embedding.weight"].shape == (10, 4)
    assert conditional["decoder.project.weight"].shape[1] == 8 + 4


def test_with_decoder_swaps_only_the_generator():
    model = build_model(_cfg(name="vaegan", conditional=True), num_classes=10)
    other = build_model(_cfg(name="vaegan", conditional=True), num_classes=10).decoder
    view = model.with_decoder(other)
    assert view.decoder is other and view.encoder is model.encoder and view.discriminator is model.discriminator
    assert view.num_classes == 10 and view.latent_dim == 8


@pytest.mark.parametrize("arch", ["conv", "resnet"])
def test_model_batchnorm_and_dropout_apply_to_encoder_and_generator_of_either_arch(arch):
    for batchnorm, dropout in ((False, 0.0), (True, 0.3)):
        model = build_model(_cfg(name="vaegan", arch=arch, batchnorm=batchnorm, dropout=dropout))
        for network in (model.encoder, model.decoder):
            assert any(isinstance(m, torch.nn.BatchNorm2d) for m in network.modules()) == batchnorm
            assert any(isinstance(m, torch.nn.Dropout) and m.p == dropout for m in network.modules()) == (dropout > 0)
    torch.manual_seed(0)
    model, z = build_model(_cfg(arch=arch, dropout=0.5)).train(), torch.randn(2, 8)
    assert not torch.equal(model.decoder(z), model.decoder(z))  # dropout is on in the generator while training


def test_the_resnet_layout_with_batchnorm_and_no_dropout_is_unchanged():
    """The cvaegan-cifar100-resnet preset's networks: same state_dict keys and parameter count as before."""
    from vaegan.config import load_preset

    model = build_model(load_preset("cvaegan-cifar100-resnet").model, num_classes=100)
    assert sum(p.numel() for p in model.parameters()) == 944_228 and len(model.state_dict()) == 153
    assert "decoder.body.3.running_mean" in model.state_dict()
