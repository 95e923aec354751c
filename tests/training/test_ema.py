import torch
from torch import nn

from vaegan.training.ema import GeneratorEMA


def test_ema_equals_the_closed_form_average_on_a_toy_parameter():
    module = nn.Linear(1, 1, bias=False)
    decay = 0.9
    ema = GeneratorEMA(module, decay)
    values = [2.0, -1.0, 0.5, 3.0, 4.0, -2.0] * 5
    expected = module.weight.item()  # the average starts at the initial weights
    for n, value in enumerate(values):
        with torch.no_grad():
            module.weight.fill_(value)
        ema.update(module)
        d = min(decay, (1 + n) / (10 + n))
        expected = d * expected + (1 - d) * value
    assert abs(ema.shadow.weight.item() - expected) < 1e-6
    assert ema.updates == len(values)


def test_ema_ramps_its_decay_and_copies_buffers():
    module = nn.BatchNorm1d(2)
    ema = GeneratorEMA(module, 0.999)
    assert ema.current_decay() == 0.1
    module.running_mean.fill_(5.0)
    ema.update(module)
    assert torch.equal(ema.shadow.running_mean, module.running_mean)
    ema.updates = torch.tensor(10_000.0, dtype=torch.float64)
    assert ema.current_decay() == 0.999


def test_ema_state_round_trips_and_the_shadow_takes_no_gradients():
    module = nn.Linear(3, 2)
    ema = GeneratorEMA(module, 0.99)
    ema.update(module)
    other = GeneratorEMA(nn.Linear(3, 2), 0.99)
    other.load_state_dict(ema.state_dict())
    assert other.updates == 1 and torch.equal(other.shadow.weight, ema.shadow.weight)
    assert not any(p.requires_grad for p in ema.shadow.parameters())


def test_a_skipped_step_leaves_the_shadow_and_the_count_as_they_were():
    module = nn.BatchNorm1d(2)
    ema = GeneratorEMA(module, 0.9)
    ema.update(module)
    before = {k: v.clone() for k, v in ema.state_dict()["shadow"].items()}
    with torch.no_grad():
        module.weight.fill_(7.0)
        module.running_mean.fill_(3.0)
    ema.update(module, skip=torch.tensor(True))
    assert all(torch.equal(before[k], v) for k, v in ema.state_dict()["shadow"].items()) and ema.updates == 1
    ema.update(module, skip=torch.tensor(False))
    assert ema.updates == 2 and torch.equal(ema.shadow.running_mean, module.running_mean)
