"""The frozen networks whose features vaegan compares images in, read from their files: the metrics classifier
(written by `vaegan classifier train`; FCD, class consistency, precision/recall and the perceptual loss) and
torchvision's VGG16 (the perceptual loss)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from vaegan.errors import VaeganError
from vaegan.models.classifier import Classifier
from vaegan.models.vgg16 import VGG16Features, file_layout
from vaegan.runs.checkpoint import read_checkpoint, state_must_fit
from vaegan.runs.weights import WeightsFile, read_state_dict

FORMAT = "vaegan-classifier"
VERSION = 2  # the classifier file's own version: 2 is the checksummed container of runs.checkpoint
NETWORK = "conv-groups"  # the network a file's weights are for (earlier files held a ResNet and lack the key)

VGG16_WEIGHTS = WeightsFile(
    what="VGG16 weights for the perceptual loss", name="vgg16-397923af.pth",
    url="https://download.pytorch.org/models/vgg16-397923af.pth", sha256_prefix="397923af", env_var="VAEGAN_VGG",
    config_key="loss.perceptual_weights")


def load_classifier(path: Path, device: torch.device) -> tuple[Classifier, dict[str, Any]]:
    """The classifier at `path` in eval mode, and its record (dataset, test accuracy, ...)."""
    payload = read_checkpoint(path, file_format=FORMAT, version=VERSION, what="classifier",
                              required=("state", "channels", "num_classes", "dataset", "test_accuracy"))
    if payload.get("network") != NETWORK:
        raise VaeganError(f"classifier {path} holds an earlier network than this vaegan's; train a new one with "
                          f"`vaegan classifier train`")
    model = Classifier(payload["num_classes"], payload["channels"])
    with state_must_fit(path):
        model.load_state_dict(payload["state"])
    info = {k: v for k, v in payload.items() if k not in ("state", "format", "version")}
    return model.to(device).eval(), info


def load_vgg16(path: Path, device: torch.device) -> VGG16Features:
    """VGG16's convolutions with the weights of torchvision's file at `path`, in eval mode. A file whose keys or
    shapes differ from torchvision's VGG16 in any way is refused, so another VGG cannot load silently."""
    state = read_state_dict(path, "VGG16 weights")
    found = {key: tuple(value.shape) for key, value in state.items()}
    expected = file_layout()
    if found != expected:
        differing = sorted(set(found) ^ set(expected)) or sorted(k for k in expected if found[k] != expected[k])
        raise VaeganError(f"{path} is not torchvision's VGG16 weights file (vgg16-397923af.pth): {differing[0]} "
                          f"{'differs' if differing[0] in found and differing[0] in expected else 'is missing or extra'}")
    model = VGG16Features()
    model.features.load_state_dict({k.removeprefix("features."): v for k, v in state.items()
                                    if k.startswith("features.")})
    return model.to(device).eval()
