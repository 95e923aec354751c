"""A fast CIFAR classifier trained with this toolkit's own data pipeline: the offline feature extractor for
class-consistency, FCD, precision/recall and sample diversity (no downloads needed).

The network and recipe follow the CIFAR speed-run classifiers (Keller Jordan's airbench, the DAWNBench
ResNet-9): three conv groups that each halve the resolution with a max pool, BatchNorm and GELU, trained by
SGD with Nesterov momentum, label smoothing and a linear warm-up then decay of the learning rate. Most of
the work happens at 16x16 and below, so an epoch costs a fraction of a ResNet's on a CPU; the defaults' accuracy
and training time are in docs/performance.md.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from vaegan.config import DEVICE_RULE, DataConfig
from vaegan.data import BatchLoader, ImageDataset, sequential_batches
from vaegan.errors import VaeganError
from vaegan.models import evaluation_mode
from vaegan.models.classifier import Classifier
from vaegan.objectives.feature_networks import FORMAT, NETWORK, VERSION
from vaegan.runs import OutputFolder
from vaegan.runs.checkpoint import write_checkpoint
from vaegan.runs.device import select_device



@dataclass
class ClassifierModelConfig:
    channels: int = field(default=32, metadata={"min": 2, "max": 8192})  # groups of c, 4c, 4c channels


@dataclass
class ClassifierTrainConfig:
    epochs: int = field(default=12, metadata={"min": 1, "max": 10**6})
    max_steps: int | None = field(default=None, metadata={"min": 1, "max": 10**9})
    batch_size: int = field(default=256, metadata={"min": 1, "max": 10**6})
    seed: int = field(default=0, metadata={"min": 0, "max": 2**63 - 1})
    device: str = field(default="auto", metadata=DEVICE_RULE)


@dataclass
class ClassifierOptimConfig:
    lr: float = field(default=0.2, metadata={"min": 0.0, "above": 0.0})  # the peak of the schedule
    weight_decay: float = field(default=5e-4, metadata={"min": 0.0})
    momentum: float = field(default=0.9, metadata={"min": 0.0, "max": 1.0})
    label_smoothing: float = field(default=0.1, metadata={"min": 0.0, "max": 1.0})
    warmup: float = field(default=0.15, metadata={"min": 0.0, "max": 1.0})  # share of the steps to reach the peak


@dataclass
class ClassifierConfig:
    """`vaegan classifier train ... key=value`: its own small config (data.*, model.channels, train.*, optim.*)."""

    data: DataConfig = field(default_factory=lambda: DataConfig(hflip=True, crop_padding=4))
    model: ClassifierModelConfig = field(default_factory=ClassifierModelConfig)
    train: ClassifierTrainConfig = field(default_factory=ClassifierTrainConfig)
    optim: ClassifierOptimConfig = field(default_factory=ClassifierOptimConfig)


def accuracy(model: Classifier, dataset: ImageDataset, device: torch.device) -> float:
    correct = 0
    with evaluation_mode(model):
        for x, y in sequential_batches(dataset, device):
            correct += (model(x).argmax(1) == y).sum().item()
    return correct / len(dataset)


def train_classifier(cfg: ClassifierConfig, train_set: ImageDataset, test_set: ImageDataset, out: Path) -> dict[str, Any]:
    """Train (see the module docstring for the recipe); save atomically to `out` with its test accuracy."""
    if train_set.num_classes < 2:
        raise VaeganError(f"{train_set.name} has one class: a classifier needs two or more to tell apart")
    folder = OutputFolder(Path(out).parent)
    folder.check(out)  # before training: a file vaegan did not write at `out` is never replaced
    device = select_device(cfg.train.device)
    torch.manual_seed(cfg.train.seed)
    model = Classifier(train_set.num_classes, cfg.model.channels).to(device).to(memory_format=torch.channels_last)
    loader = BatchLoader(train_set, cfg.train.batch_size, shuffle=True, hflip=cfg.data.hflip,
                         crop_padding=cfg.data.crop_padding, seed=cfg.train.seed, device=device,
                         channels_last=True)
    total = cfg.train.max_steps or cfg.train.epochs * len(loader)
    optim = cfg.optim
    optimizer = torch.optim.SGD(model.parameters(), optim.lr, momentum=optim.momentum, nesterov=optim.momentum > 0,
                                weight_decay=optim.weight_decay)
    peak = max(1, round(optim.warmup * total))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: step / peak if step < peak else max(0.0, (total - step) / max(1, total - peak)))
    step, epoch, started = 0, 0, time.perf_counter()
    model.train()
    while step < total:
        for x, y in loader.epoch_batches(epoch):
            loss = F.cross_entropy(model(x), y, label_smoothing=optim.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            step += 1
            if step >= total:
                break
        epoch += 1
    train_seconds = round(time.perf_counter() - started, 1)
    result = {"dataset": train_set.name, "test_accuracy": accuracy(model, test_set, device), "steps": step,
              "train_seconds": train_seconds}
    write_checkpoint(out, {"state": model.state_dict(), "network": NETWORK, "channels": cfg.model.channels,
                           "num_classes": train_set.num_classes, "class_names": train_set.class_names, **result},
                     file_format=FORMAT, version=VERSION)
    folder.record(out)
    return result


def check_matches(info: dict[str, Any], dataset: str, path: Path) -> None:
    if info["dataset"] != dataset:
        raise VaeganError(f"classifier {path} was trained on {info['dataset']}, but the run uses {dataset}")
