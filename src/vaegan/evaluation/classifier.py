"""A compact ResNet classifier trained with this toolkit's own data pipeline: the offline feature extractor
for class-consistency, FCD and precision/recall (no downloads needed)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vaegan.config import DEVICE_RULE, DataConfig
from vaegan.data import BatchLoader, ImageDataset, sequential_batches
from vaegan.errors import VaeganError
from vaegan.models import evaluation_mode
from vaegan.runs.checkpoint import read_checkpoint, state_must_fit, write_checkpoint
from vaegan.runs.device import select_device

FORMAT = "vaegan-classifier"
VERSION = 2  # this file's own version: 2 is the checksummed container of runs.checkpoint


@dataclass
class ClassifierModelConfig:
    channels: int = field(default=64, metadata={"min": 2, "max": 8192})


@dataclass
class ClassifierTrainConfig:
    epochs: int = field(default=15, metadata={"min": 1, "max": 10**6})
    max_steps: int | None = field(default=None, metadata={"min": 1, "max": 10**9})
    batch_size: int = field(default=128, metadata={"min": 1, "max": 10**6})
    seed: int = field(default=0, metadata={"min": 0, "max": 2**63 - 1})
    device: str = field(default="auto", metadata=DEVICE_RULE)


@dataclass
class ClassifierOptimConfig:
    lr: float = field(default=2e-3, metadata={"min": 0.0, "above": 0.0})
    weight_decay: float = field(default=5e-4, metadata={"min": 0.0})


@dataclass
class ClassifierConfig:
    """`vaegan classifier train ... key=value`: its own small config (data.*, model.channels, train.*, optim.*)."""

    data: DataConfig = field(default_factory=lambda: DataConfig(hflip=True, crop_padding=4))
    model: ClassifierModelConfig = field(default_factory=ClassifierModelConfig)
    train: ClassifierTrainConfig = field(default_factory=ClassifierTrainConfig)
    optim: ClassifierOptimConfig = field(default_factory=ClassifierOptimConfig)


class ResidualBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = (nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))
                         if stride != 1 or c_in != c_out else nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(h)) + self.shortcut(x))


class Classifier(nn.Module):
    """Stem + three residual stages (c, 2c, 4c; 32 -> 16 -> 8) + global average pool -> features -> logits."""

    def __init__(self, num_classes: int, channels: int = 64):
        super().__init__()
        c = channels
        self.stem = nn.Sequential(nn.Conv2d(3, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c), nn.ReLU())
        self.stages = nn.Sequential(ResidualBlock(c, c, 1), ResidualBlock(c, 2 * c, 2),
                                    ResidualBlock(2 * c, 4 * c, 2))
        self.head = nn.Linear(4 * c, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The penultimate features [N, 4c] (FCD and precision/recall are computed in this space)."""
        return self.stages(self.stem(x)).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def accuracy(model: Classifier, dataset: ImageDataset, device: torch.device) -> float:
    correct = 0
    with evaluation_mode(model):
        for x, y in sequential_batches(dataset, device):
            correct += (model(x).argmax(1) == y).sum().item()
    return correct / len(dataset)


def train_classifier(cfg: ClassifierConfig, train_set: ImageDataset, test_set: ImageDataset, out: Path) -> dict[str, Any]:
    """Train with cross-entropy, Adam and a cosine schedule; save atomically to `out` with its test accuracy."""
    device = select_device(cfg.train.device)
    torch.manual_seed(cfg.train.seed)
    model = Classifier(train_set.num_classes, cfg.model.channels).to(device)
    loader = BatchLoader(train_set, cfg.train.batch_size, shuffle=True, hflip=cfg.data.hflip,
                         crop_padding=cfg.data.crop_padding, seed=cfg.train.seed, device=device)
    total = cfg.train.max_steps or cfg.train.epochs * len(loader)
    optimizer = torch.optim.Adam(model.parameters(), cfg.optim.lr, weight_decay=cfg.optim.weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, total)
    step, epoch, started = 0, 0, time.perf_counter()
    model.train()
    while step < total:
        for x, y in loader.epoch_batches(epoch):
            loss = F.cross_entropy(model(x), y)
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
    write_checkpoint(out, {"state": model.state_dict(), "channels": cfg.model.channels,
                           "num_classes": train_set.num_classes, "class_names": train_set.class_names, **result},
                     file_format=FORMAT, version=VERSION)
    return result


def load_classifier(path: Path, device: torch.device) -> tuple[Classifier, dict[str, Any]]:
    """The classifier at `path` in eval mode, and its record (dataset, test accuracy, ...)."""
    payload = read_checkpoint(path, file_format=FORMAT, version=VERSION, what="classifier",
                              required=("state", "channels", "num_classes", "dataset", "test_accuracy"))
    model = Classifier(payload["num_classes"], payload["channels"])
    with state_must_fit(path):
        model.load_state_dict(payload["state"])
    info = {k: v for k, v in payload.items() if k not in ("state", "format", "version")}
    return model.to(device).eval(), info


def check_matches(info: dict[str, Any], dataset: str, path: Path) -> None:
    if info["dataset"] != dataset:
        raise VaeganError(f"classifier {path} was trained on {info['dataset']}, but the run uses {dataset}")
