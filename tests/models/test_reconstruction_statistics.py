"""G's second set of BatchNorm running statistics (`model.split_bn_stats`): which pass moves which set, which
set eval mode reads, that training itself does not change, and samples on the statistics of every pass
(`model.sample_bn_stats=all`)."""

import copy

import pytest
import torch
from torch import nn

from vaegan.config import LossConfig, ModelConfig
from vaegan.models import build_model
from vaegan.models.reconstruction_statistics import (PREFIX, STATISTICS, add_reconstruction_statistics,
                                                     reconstruction_statistics)
from vaegan.training import TrainStep, build_adam
from vaegan.training.ema import GeneratorEMA


def _model(split: bool = True, arch: str = "conv", **kw):
    torch.manual_seed(0)
    cfg = ModelConfig(name="vaegan", arch=arch, conditional=True, channels=8, d_channels=8, latent_dim=8,
                      embed_dim=4, split_bn_stats=split, **kw)
    return build_model(cfg, num_classes=10)


def _g_layers(model) -> list[nn.BatchNorm2d]:
    return [m for m in model.decoder.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def _sets(model) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """(G's own running means and variances, its reconstruction ones), cloned."""
    layers = _g_layers(model)
    own = [getattr(layer, name).clone() for layer in layers for name in STATISTICS[:2]]
    second = [getattr(layer, PREFIX + name).clone() for layer in layers for name in STATISTICS[:2]]
    return own, second


def _equal(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize("arch,class_norm", [("conv", False), ("conv", True), ("resnet", True)])
def test_every_batchnorm_layer_of_g_and_only_g_gets_the_second_set(arch, class_norm):
    plain, split = _model(False, arch, class_norm=class_norm), _model(True, arch, class_norm=class_norm)
    added = set(split.state_dict()) - set(plain.state_dict())
    assert len(added) == 3 * len(_g_layers(split)) > 0
    assert all(key.startswith("decoder.") and key.rsplit(".", 1)[1].startswith(PREFIX) for key in added)
    assert sum(p.numel() for p in split.parameters()) == sum(p.numel() for p in plain.parameters())


def test_the_reconstruction_pass_moves_the_second_set_and_prior_samples_the_own_one():
    model = _model().train()
    x, y = torch.rand(6, 3, 32, 32) * 2 - 1, torch.arange(6)
    own, second = _sets(model)
    model(x, y)
    after_recon = _sets(model)
    assert _equal(after_recon[0], own) and not _equal(after_recon[1], second)
    model.sample(6, y)
    after_sample = _sets(model)
    assert not _equal(after_sample[0], own) and _equal(after_sample[1], after_recon[1])
    assert all(layer.num_batches_tracked == 1 and getattr(layer, PREFIX + "num_batches_tracked") == 1
               for layer in _g_layers(model))


def test_in_eval_mode_reconstructions_read_the_second_set_and_samples_the_own_one():
    """A plain model given the split model's second set as its only set reconstructs as the split model does;
    given the own set, it samples as the split model does."""
    torch.manual_seed(1)
    model = _model().train()
    for _ in range(3):
        model(torch.rand(8, 3, 32, 32) * 2 - 1, torch.arange(8))
        model.sample(8, torch.arange(8))
    model.eval()
    as_recon, as_sample = _model(False).eval(), _model(False).eval()
    for target in (as_recon, as_sample):
        target.load_state_dict({k: v for k, v in model.state_dict().items() if PREFIX not in k})
    for layer, source in zip(_g_layers(as_recon), _g_layers(model), strict=True):
        for name in STATISTICS:
            getattr(layer, name).copy_(getattr(source, PREFIX + name))
    x, y, z = torch.rand(4, 3, 32, 32) * 2 - 1, torch.arange(4), torch.randn(4, 8)
    with torch.no_grad():
        assert torch.equal(model(x, y)[0], as_recon(x, y)[0])
        assert not torch.allclose(model(x, y)[0], as_sample(x, y)[0])
        assert torch.equal(model.generate(z, y), as_sample.generate(z, y))
        assert torch.equal(model.decode(z, y), as_recon.decoder(z, y))


def test_a_training_step_computes_the_same_with_or_without_the_second_set():
    """In training mode each pass normalises with its batch's statistics: the weights after a few steps are the
    same; only where the running statistics are kept differs."""
    loss = LossConfig(beta=0.2, reduction="mean", gan_loss="hinge")
    runs = []
    for split in (False, True):
        model = _model(split)
        g = build_adam(model.autoencoder_parameters(), 1e-3, 0.0, (0.5, 0.999))
        d = build_adam(model.discriminator.parameters(), 1e-3, 0.0, (0.5, 0.999))
        step = TrainStep(model, g, loss, d_optimizer=d)
        torch.manual_seed(5)
        for _ in range(3):
            values = step(torch.rand(8, 3, 32, 32) * 2 - 1, torch.arange(8)).values
        runs.append((model, values))
    (plain, plain_values), (split, split_values) = runs
    assert all(torch.equal(p, q) for p, q in zip(plain.parameters(), split.parameters(), strict=True))
    assert plain_values.keys() == split_values.keys()
    assert all(torch.equal(plain_values[k], split_values[k]) for k in plain_values)
    own, second = _sets(split)
    mixed = [getattr(layer, name) for layer in _g_layers(plain) for name in STATISTICS[:2]]
    assert not _equal(own, second) and not _equal(own, mixed) and not _equal(second, mixed)


def test_with_samples_on_every_pass_the_own_set_is_the_plain_models_one_set_and_the_second_the_splits():
    """`sample_bn_stats=all`: samples read what a model without the split would, reconstructions what the
    split model's would."""
    loss = LossConfig(beta=0.2, reduction="mean", gan_loss="hinge")
    models = []
    for split, samples in ((False, "prior"), (True, "prior"), (True, "all")):
        model = _model(split, sample_bn_stats=samples)
        g = build_adam(model.autoencoder_parameters(), 1e-3, 0.0, (0.5, 0.999))
        d = build_adam(model.discriminator.parameters(), 1e-3, 0.0, (0.5, 0.999))
        step = TrainStep(model, g, loss, d_optimizer=d)
        torch.manual_seed(5)
        for _ in range(3):
            step(torch.rand(8, 3, 32, 32) * 2 - 1, torch.arange(8))
        models.append(model.eval())
    plain, prior, every = models
    own, second = _sets(every)
    one_set = [getattr(layer, name) for layer in _g_layers(plain) for name in STATISTICS[:2]]
    assert all(torch.allclose(a, b, rtol=1e-5, atol=1e-6) for a, b in zip(own, one_set, strict=True))
    assert _equal(second, _sets(prior)[1]) and not _equal(own, _sets(prior)[0])
    assert all(layer.num_batches_tracked == plain_layer.num_batches_tracked > getattr(layer, PREFIX + STATISTICS[2])
               for layer, plain_layer in zip(_g_layers(every), _g_layers(plain), strict=True))
    x, y, z = torch.rand(4, 3, 32, 32) * 2 - 1, torch.arange(4), torch.randn(4, 8)
    with torch.no_grad():
        assert torch.allclose(every.generate(z, y), plain.generate(z, y), atol=1e-5)
        assert not torch.allclose(every.generate(z, y), prior.generate(z, y), atol=1e-3)
        assert torch.equal(every(x, y)[0], prior(x, y)[0])


def test_eval_mode_reconstructions_leave_both_sets_alone():
    model = _model(sample_bn_stats="all").eval()
    before = _sets(model)
    with torch.no_grad():
        model(torch.rand(4, 3, 32, 32) * 2 - 1, torch.arange(4))
    after = _sets(model)
    assert _equal(before[0], after[0]) and _equal(before[1], after[1])


def test_the_ema_copy_of_g_carries_both_sets():
    model = _model().train()
    ema = GeneratorEMA(model.decoder, 0.9)
    model(torch.rand(4, 3, 32, 32) * 2 - 1, torch.arange(4))
    ema.update(model.decoder)
    shadow = model.with_decoder(ema.shadow)
    assert _equal(_sets(shadow)[1], _sets(model)[1])


def test_the_swap_is_undone_when_the_block_raises_and_a_plain_decoder_is_left_alone():
    model = _model()
    own, second = _sets(model)
    layer = _g_layers(model)[0]
    with torch.no_grad():
        getattr(layer, PREFIX + "running_mean").fill_(7.0)
    with pytest.raises(RuntimeError), reconstruction_statistics(model.decoder):
        assert torch.all(layer.running_mean == 7.0)
        raise RuntimeError("inside")
    assert torch.all(getattr(layer, PREFIX + "running_mean") == 7.0) and torch.equal(layer.running_mean, own[0])
    plain = _model(False)
    before = copy.deepcopy(plain.state_dict())
    with reconstruction_statistics(plain.decoder):
        pass
    assert all(torch.equal(before[k], v) for k, v in plain.state_dict().items())


def test_a_decoder_without_running_statistics_is_refused():
    with pytest.raises(ValueError, match="running statistics"):
        add_reconstruction_statistics(nn.Sequential(nn.Conv2d(3, 3, 1)))
    with pytest.raises(ValueError, match="running statistics"):
        add_reconstruction_statistics(nn.Sequential(nn.BatchNorm2d(3, track_running_stats=False)))
    with pytest.raises(ValueError, match="momentum"):
        add_reconstruction_statistics(nn.Sequential(nn.BatchNorm2d(3, momentum=None)), own_set_of_every_pass=True)
