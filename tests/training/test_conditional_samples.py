"""Conditioning works: a classifier trained here on shapes10 recognises the class asked of the generator."""

import pytest
import torch
from torch import nn

from vaegan.config import apply_overrides, load_preset
from vaegan.data import BatchLoader, load_dataset
from vaegan.runs import RunDir
from vaegan.training import Trainer
from vaegan.viz import class_conditional_samples

TINY = {"data.name": "shapes10", "model.channels": 16, "model.latent_dim": 16, "model.d_channels": 16,
        "model.embed_dim": 8, "train.batch_size": 32, "train.eval_images": 200, "train.device": "cpu",
        "train.ckpt_every": 10_000}


@pytest.fixture(scope="module")
def shapes():
    return load_dataset("shapes10", "train"), load_dataset("shapes10", "test")


@pytest.fixture(scope="module")
def classifier(shapes):
    """A small conv net, 300 Adam steps; it must itself be accurate for the check to mean anything."""
    train_set, test_set = shapes
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1), nn.ReLU(), nn.Conv2d(16, 32, 3, 2, 1), nn.ReLU(),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10))
    optimizer = torch.optim.Adam(net.parameters(), 1e-2)
    for _, (x, y) in zip(range(300), BatchLoader(train_set, 64, shuffle=True, seed=0).epoch_batches(0)):
        loss = nn.functional.cross_entropy(net(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    net.eval()
    x, y = next(BatchLoader(test_set, len(test_set), shuffle=False).epoch_batches(0))
    with torch.no_grad():
        assert (net(x).argmax(1) == y).float().mean() > 0.95
    return net


# Short schedules need a higher learning rate than the CIFAR presets' 2e-4 / 1e-4.
@pytest.mark.slow
@pytest.mark.parametrize("preset,steps,lrs", [("cvaegan-cifar100", 600, ("2e-3", "1e-3")),
                                               ("gan-cifar100", 600, ("2e-3", "2e-3"))])
def test_samples_show_the_requested_class(tmp_path, shapes, classifier, preset, steps, lrs):
    cfg = apply_overrides(load_preset(preset), {**TINY, "train.max_steps": steps, "optim.lr": lrs[0],
                                                "optim.d_lr": lrs[1]})
    trainer = Trainer(cfg, RunDir(tmp_path / "run"), shapes[0])
    trainer.fit()
    assert trainer.model.num_classes == 10  # a CIFAR-100 preset on shapes10 has shapes10's classes
    samples = class_conditional_samples(trainer.eval_model, list(range(10)), per_class=20, seed=1)
    with torch.no_grad():
        predicted = classifier(samples).argmax(1)
    accuracy = (predicted == torch.arange(10).repeat_interleave(20)).float().mean().item()
    assert accuracy >= 0.8, f"{preset}: the classifier saw the requested class in {accuracy:.0%} of samples"
