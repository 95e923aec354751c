import pytest
import torch
from torch import nn

from vaegan.config import ModelConfig
from vaegan.models import Decoder, Encoder, build_model, reparameterize


def _layer_shapes(module: nn.Module) -> list[tuple[str, tuple]]:
    return [(type(m).__name__, tuple(m.weight.shape)) for m in module.modules()
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear, nn.BatchNorm2d))]


def test_reference_encoder_layers_and_parameter_count():
    enc = Encoder(latent_dim=128, batchnorm=True)
    assert _layer_shapes(enc) == [
        ("Conv2d", (128, 3, 4, 4)), ("BatchNorm2d", (128,)),
        ("Conv2d", (256, 128, 4, 4)), ("BatchNorm2d", (256,)),
        ("Conv2d", (512, 256, 4, 4)), ("BatchNorm2d", (512,)),
        ("Linear", (128, 8192)), ("Linear", (128, 8192)),
    ]
    convs = (3 * 128 * 16 + 128) + (128 * 256 * 16 + 256) + (256 * 512 * 16 + 512)
    bns = 2 * (128 + 256 + 512)
    heads = 2 * (8192 * 128 + 128)
    assert sum(p.numel() for p in enc.parameters()) == convs + bns + heads == 4_727_680


def test_reference_decoder_layers_and_parameter_count():
    dec = Decoder(latent_dim=128, batchnorm=True)
    assert _layer_shapes(dec) == [
        ("Linear", (8192, 128)),
        ("ConvTranspose2d", (512, 256, 4, 4)), ("BatchNorm2d", (256,)),
        ("ConvTranspose2d", (256, 128, 4, 4)), ("BatchNorm2d", (128,)),
        ("ConvTranspose2d", (128, 64, 4, 4)), ("BatchNorm2d", (64,)),
        ("ConvTranspose2d", (64, 3, 3, 3)),
    ]
    linear = 128 * 8192 + 8192
    convs = (512 * 256 * 16 + 256) + (256 * 128 * 16 + 128) + (128 * 64 * 16 + 64) + (64 * 3 * 9 + 3)
    bns = 2 * (256 + 128 + 64)
    assert sum(p.numel() for p in dec.parameters()) == linear + convs + bns == 3_812_355
    assert isinstance(dec.body[-1], nn.Tanh)


def test_shapes_through_the_model_and_output_range():
    model = build_model(ModelConfig(latent_dim=16))
    x = torch.rand(5, 3, 32, 32) * 2 - 1
    x_hat, mu, logvar = model(x)
    assert x_hat.shape == x.shape and mu.shape == logvar.shape == (5, 16)
    assert x_hat.abs().max() <= 1.0


def test_batchnorm_off_and_dropout_options():
    plain = build_model(ModelConfig(latent_dim=8, batchnorm=False, dropout=0.0))
    assert not any(isinstance(m, (nn.BatchNorm2d, nn.Dropout)) for m in plain.modules())
    dropped = build_model(ModelConfig(latent_dim=8, batchnorm=False, dropout=0.3))
    drops = [m for m in dropped.modules() if isinstance(m, nn.Dropout)]
    assert len(drops) == 6 and all(d.p == 0.3 for d in drops)


def test_eval_mode_encodes_to_the_mean_deterministically():
    model = build_model(ModelConfig(latent_dim=8)).eval()
    x = torch.rand(3, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        a, mu, _ = model(x)
        b, _, _ = model(x)
        assert torch.equal(a, b)
        assert torch.allclose(a, model.decoder(mu))


@pytest.mark.parametrize("scale", [0.0, 0.3, 1.0])
def test_noise_scale_multiplies_the_reparameterisation_noise(scale):
    mu, logvar = torch.zeros(20000, 4), torch.full((20000, 4), 2 * torch.log(torch.tensor(2.0)).item())
    torch.manual_seed(0)
    z = reparameterize(mu, logvar, scale)
    assert z.std().item() == pytest.approx(2.0 * scale, abs=0.03)


def test_channels_scale_every_layer_of_the_same_architecture():
    small = build_model(ModelConfig(latent_dim=8, channels=16))
    enc = [s for _, s in _layer_shapes(small.encoder)]
    dec = [s for _, s in _layer_shapes(small.decoder)]
    assert enc[0] == (16, 3, 4, 4) and enc[4] == (64, 32, 4, 4) and enc[-1] == (8, 64 * 16)
    assert dec[0] == (64 * 16, 8) and dec[-1] == (8, 3, 3, 3)
    assert small(torch.zeros(2, 3, 32, 32))[0].shape == (2, 3, 32, 32)
