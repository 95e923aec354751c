"""VGG16's convolutional part in torchvision's layout (`features.N.weight`), written in plain torch, for the
perceptual loss: torchvision's `vgg16-397923af.pth` loads into it unchanged (its classifier layers, unused here,
are checked for shape and dropped)."""

from __future__ import annotations

import torch
from torch import nn

# torchvision's configuration "D": output channels of each 3x3 conv (+ ReLU), "M" a 2x2 max pool.
CONFIGURATION = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]
# The fully connected layers of the published file: key -> shape.
CLASSIFIER_SHAPES = {"classifier.0.weight": (4096, 512 * 7 * 7), "classifier.0.bias": (4096,),
                     "classifier.3.weight": (4096, 4096), "classifier.3.bias": (4096,),
                     "classifier.6.weight": (1000, 4096), "classifier.6.bias": (1000,)}
# The ReLU outputs LPIPS compares: relu1_2, relu2_2, relu3_3, relu4_3, relu5_3 (indices into `features`).
LPIPS_LAYERS = (3, 8, 15, 22, 29)
# ImageNet statistics of the [0, 1] inputs the weights were trained on.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _features() -> nn.Sequential:
    layers: list[nn.Module] = []
    channels = 3
    for width in CONFIGURATION:
        if width == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(channels, width, 3, padding=1), nn.ReLU()]
            channels = width
    return nn.Sequential(*layers)


class VGG16Features(nn.Module):
    """Inputs in [-1, 1]; `layers` returns the activations at LPIPS_LAYERS (32x32 inputs end at 2x2)."""

    def __init__(self):
        super().__init__()
        self.features = _features()
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def layers(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = ((x + 1) / 2 - self.mean) / self.std
        outputs = []
        for index, layer in enumerate(self.features[: LPIPS_LAYERS[-1] + 1]):
            x = layer(x)
            if index in LPIPS_LAYERS:
                outputs.append(x)
        return outputs


def file_layout() -> dict[str, tuple[int, ...]]:
    """Every key of torchvision's VGG16 state dict with its shape."""
    shapes = {f"features.{key}": tuple(value.shape) for key, value in VGG16Features().features.state_dict().items()}
    return {**shapes, **CLASSIFIER_SHAPES}
