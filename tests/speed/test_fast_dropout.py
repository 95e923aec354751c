"""FastDropout: the distribution, scaling and gradient of nn.Dropout, from a cheaper random mask."""

import torch

from vaegan.speed.fast_dropout import FastDropout


def test_fast_dropout_has_dropout_statistics_and_gradient():
    layer = FastDropout(0.3)
    x = torch.ones(64, 32, 16, 16).contiguous(memory_format=torch.channels_last).requires_grad_()
    y = layer(x)
    assert y.is_contiguous(memory_format=torch.channels_last)
    kept = y.detach() > 0
    assert abs(kept.float().mean().item() - 0.7) < 0.005
    assert torch.allclose(y.detach()[kept], torch.tensor(1 / 0.7), rtol=1e-4)
    y.sum().backward()
    assert torch.equal(x.grad, y.detach())
    layer.eval()
    assert layer(x) is x
    assert FastDropout(0.0)(x) is x
    assert not FastDropout(1.0)(x).any()
    odd = torch.ones(7, 5)  # sizes that are not a multiple of four
    assert FastDropout(0.5)(odd).shape == (7, 5)
