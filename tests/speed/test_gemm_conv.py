import pytest
import torch
from torch import nn

from vaegan.config import LossConfig, ModelConfig
from vaegan.models import build_model
from vaegan.speed.gemm_conv import (GemmWeightGradConv2d, GemmWeightGradConvTranspose2d, use_gemm_weight_grad,
                                       weight_gradient)
from vaegan.speed.settings import SpeedSettings, apply_speed_settings, speed_defaults
from vaegan.training import TrainStep

LAYERS = [  # (class, in, out, kernel, stride, padding)
    (nn.Conv2d, 5, 7, 4, 2, 1),  # the reference encoder's convs
    (nn.ConvTranspose2d, 7, 5, 4, 2, 1),  # the reference decoder's upsampling
    (nn.Conv2d, 4, 6, 3, 1, 1),  # ResNet blocks
    (nn.ConvTranspose2d, 6, 3, 3, 1, 1),  # the reference decoder's last layer
    (nn.Conv2d, 3, 4, (3, 5), (1, 2), (0, 2)),  # non-square kernel, stride and padding
    (nn.ConvTranspose2d, 4, 3, (2, 4), (2, 3), (1, 0)),
]


def gradients(layer: nn.Module, x: torch.Tensor, grad_out: torch.Tensor):
    x = x.detach().requires_grad_()
    out = layer(x)
    out.backward(grad_out)
    return out.detach(), x.grad, layer.weight.grad, layer.bias.grad


@pytest.mark.parametrize("cls,c_in,c_out,kernel,stride,padding", LAYERS)
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "nhwc"])
def test_gradients_match_torch(cls, c_in, c_out, kernel, stride, padding, channels_last):
    torch.manual_seed(0)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    reference = cls(c_in, c_out, kernel, stride, padding).double().to(memory_format=fmt)
    fast = cls(c_in, c_out, kernel, stride, padding).double().to(memory_format=fmt)
    fast.load_state_dict(reference.state_dict())
    use_gemm_weight_grad(fast, min_channels=1)
    assert type(fast) in (GemmWeightGradConv2d, GemmWeightGradConvTranspose2d)
    x = torch.randn(3, c_in, 11, 13, dtype=torch.double).contiguous(memory_format=fmt)
    grad_out = torch.randn_like(reference(x))
    for expected, got in zip(gradients(reference, x, grad_out), gradients(fast, x, grad_out)):
        assert got.shape == expected.shape
        assert torch.allclose(got, expected, rtol=1e-10, atol=1e-10)
    assert fast.weight.grad.stride() == fast.weight.stride()


def test_weight_gradient_alone_and_without_input_gradient():
    """The first layer's input needs no gradient: only dW and db are computed, and they are right."""
    torch.manual_seed(0)
    reference = nn.Conv2d(3, 8, 4, 2, 1)
    fast = use_gemm_weight_grad(nn.Conv2d(3, 8, 4, 2, 1), min_channels=1)
    fast.load_state_dict(reference.state_dict())
    x = torch.randn(2, 3, 32, 32)
    reference(x).square().sum().backward()
    fast(x).square().sum().backward()
    assert torch.allclose(fast.weight.grad, reference.weight.grad, rtol=1e-4, atol=1e-4)
    assert torch.allclose(fast.bias.grad, reference.bias.grad, rtol=1e-4, atol=1e-4)
    grad_out = torch.randn(2, 8, 16, 16)
    direct = weight_gradient(x, grad_out, reference.weight.shape, (2, 2), (1, 1), transposed=False)
    expected = torch.ops.aten.convolution_backward(grad_out, x, reference.weight, None, [2, 2], [1, 1], [1, 1],
                                                   False, [0, 0], 1, [False, True, False])[1]
    assert torch.allclose(direct, expected, rtol=1e-4, atol=1e-4)


def test_only_plain_wide_convs_are_switched_and_the_state_dict_is_kept():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(64, 64, 3, 1, 1),  # switched
        nn.ConvTranspose2d(64, 64, 4, 2, 1),  # switched
        nn.Conv2d(3, 64, 3, 1, 1),  # too thin
        nn.Conv2d(64, 64, 1),  # 1x1: nothing to gain
        nn.Conv2d(64, 64, 3, 1, 1, groups=2),
        nn.Conv2d(64, 64, 3, 1, 2, dilation=2),
        nn.Conv2d(64, 64, 3, 1, 1, padding_mode="reflect"),
        nn.Conv2d(64, 64, 3, 1, "same"),
        nn.ConvTranspose2d(64, 64, 3, 2, 1, output_padding=1),
        nn.Linear(64, 64),
    )
    params = list(model.parameters())
    state = {k: v.clone() for k, v in model.state_dict().items()}
    use_gemm_weight_grad(model)
    assert [type(m) for m in model[:2]] == [GemmWeightGradConv2d, GemmWeightGradConvTranspose2d]
    assert all(type(m) in (nn.Conv2d, nn.ConvTranspose2d, nn.Linear) for m in model[2:])
    assert list(model.parameters()) == params  # an optimiser built before still holds the right tensors
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    with pytest.raises(ValueError, match="output_size"):
        model[1](torch.zeros(1, 64, 4, 4), output_size=[8, 8])


def test_cpu_defaults_switch_the_middle_convs_of_a_width_64_vae():
    """Training exactness with them switched is tested with the other speed settings (tests/training/test_step.py)."""
    settings = speed_defaults("cpu")
    assert settings.gemm_weight_grad
    model = apply_speed_settings(build_model(ModelConfig(latent_dim=8, channels=64)), settings)
    assert sum(type(m) is not nn.Conv2d and isinstance(m, nn.Conv2d) for m in model.modules()) == 2


def test_training_with_it_follows_the_plain_gradients():
    """Without dropout and with the same noise, one SGD step moves every weight as plain PyTorch does.

    (No BatchNorm: a conv bias in front of it has a zero gradient, made of rounding noise only.)"""
    x = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    steps = []
    for settings in (SpeedSettings(), SpeedSettings(channels_last=True, gemm_weight_grad=True)):
        torch.manual_seed(0)
        model = apply_speed_settings(build_model(ModelConfig(latent_dim=8, batchnorm=False, noise_scale=0.3,
                                                             channels=64)), settings)
        before = [p.detach().clone() for p in model.parameters()]
        optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
        TrainStep(model, optimizer, LossConfig(beta=4.0), speed=settings)(x)
        steps.append([p.detach() - b for p, b in zip(model.parameters(), before)])
    for plain, fast in zip(*steps):
        assert (fast - plain).norm() <= 1e-4 * plain.norm()
