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
from vaegan.runs.checkpoint import is_count, read_checkpoint, state_must_fit
from vaegan.runs.weights import WeightsFile, read_state_dict

FORMAT = "vaegan-classifier"
VERSION = 2  # the classifier file's own version: 2 is the checksummed container of runs.checkpoint
NETWORK = "conv-groups"  # the network a file's weights are for (earlier files held a ResNet and lack the key)

VGG16_WEIGHTS = WeightsFile(
    what="VGG16 weights for the perceptual loss", name="vgg16-397923af.pth",
    url="https://download.pytorch.org/models/vgg16-397923af.pth", sha256_prefix="397923af", env_var="VAEGAN_VGG",
    config_key="loss.perceptual_weights")


TRAIN_A_NEW_ONE = "train a new one with `vaegan classifier train`"


def read_given_classifier(path: Path) -> dict[str, Any]:
    """The record of a classifier file a user named with --classifier, read before any work starts, so that a
    missing or damaged file fails at once rather than after the training it was meant to score."""
    if not path.exists():
        raise VaeganError(f"--classifier: no file at {path}")
    return load_classifier(path, torch.device("cpu"))[1]


def load_classifier(path: Path, device: torch.device) -> tuple[Classifier, dict[str, Any]]:
    """The classifier at `path` in eval mode, and its record (dataset, test accuracy, ...)."""
    payload = read_checkpoint(path, file_format=FORMAT, version=VERSION, what="classifier",
                              required=("state", "channels", "num_classes", "dataset", "test_accuracy"),
                              remedy=f"{TRAIN_A_NEW_ONE} or restore a copy")
    if payload.get("network") != NETWORK:
        raise VaeganError(f"classifier {path} holds an earlier network than this vaegan's; {TRAIN_A_NEW_ONE}")
    _check_classifier_record(path, payload)
    model = Classifier(payload["num_classes"], payload["channels"])
    with state_must_fit(path):
        model.load_state_dict(payload["state"])
    info = {k: v for k, v in payload.items() if k not in ("state", "format", "version")}
    return model.to(device).eval(), info


def _check_classifier_record(path: Path, payload: dict[str, Any]) -> None:
    """Every field of a classifier file, checked before anything is built from it: a checksum proves the file
    unchanged since it was written, not that its writer wrote sensible values."""
    def invalid(field: str, why: str) -> VaeganError:
        return VaeganError(f"classifier {path} has an invalid {field} ({why}); {TRAIN_A_NEW_ONE}")
    channels, classes, names = payload["channels"], payload["num_classes"], payload.get("class_names")
    for field, value in (("channels", channels), ("num_classes", classes)):
        if not is_count(value, 1):
            raise invalid(field, f"{value!r}, not a positive integer")
    if names is not None and not (isinstance(names, list) and all(isinstance(n, str) for n in names)
                                  and len(names) == classes):
        raise invalid("class_names", f"not a list of {classes} names")
    if not isinstance(payload["dataset"], str):
        raise invalid("dataset", f"{payload['dataset']!r}, not a name")
    accuracy = payload["test_accuracy"]
    if not (isinstance(accuracy, (int, float)) and not isinstance(accuracy, bool) and 0 <= accuracy <= 1):
        raise invalid("test_accuracy", f"{accuracy!r}, not a share between 0 and 1")
    state = payload["state"]
    if not (isinstance(state, dict) and all(isinstance(k, str) and torch.is_tensor(v) for k, v in state.items())):
        raise invalid("state", "not a dict of named tensors")
    found = {key: tuple(value.shape) for key, value in state.items()}
    stem, head = found.get("stem.0.weight", ())[:1], found.get("head.weight", ())[:1]
    if stem != (channels,):  # first, so that the shapes below are those of a network the file holds
        raise invalid("channels", f"{channels}, but its state's first layer has {stem[0] if stem else 'no'} "
                                  "channels")
    if head != (classes,):
        raise invalid("num_classes", f"{classes}, but its state's head has {head[0] if head else 'no'} outputs")
    with torch.device("meta"):  # the shapes the record describes, without allocating them
        expected = {key: tuple(value.shape) for key, value in Classifier(classes, channels).state_dict().items()}
    if found != expected:
        key = sorted(set(found) ^ set(expected)) or sorted(k for k in expected if found[k] != expected[k])
        raise invalid("state", f"{key[0]} is missing, extra or of another shape")


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
