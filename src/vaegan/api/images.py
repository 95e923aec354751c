"""Images and labels as a Python user holds them, to and from what the networks take.

Images come in as uint8 tensors [N,3,H,W] (or one [3,H,W]), PIL images (one or a list; any size: resized and
centre-cropped like the user's own data), or, for round trips, float tensors in [-1, 1]. They go out as uint8
tensors on the CPU, a list of PIL images, or [-1, 1] floats on the model's device when asked for.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Union

import numpy as np
import torch
from PIL import Image

from vaegan.data.loader import PIXEL_VALUES
from vaegan.data.resize import SIDE, resize_and_crop
from vaegan.errors import VaeganError
from vaegan.viz import to_uint8

Images = Union[torch.Tensor, Image.Image, Sequence[Image.Image]]
Labels = Union[int, str, Sequence[Union[int, str]], torch.Tensor, None]
OUTPUTS = ("uint8", "pil", "float")


def model_input(images: Images, device: torch.device) -> torch.Tensor:
    """Images as the networks take them: float [N,3,32,32] in [-1, 1] on `device`."""
    if isinstance(images, Image.Image):
        images = [images]
    if isinstance(images, Sequence) and not isinstance(images, torch.Tensor):
        if not images or not all(isinstance(image, Image.Image) for image in images):
            raise VaeganError("images: give a uint8 tensor [N,3,H,W], a PIL image or a non-empty list of PIL images")
        pixels = np.stack([resize_and_crop(image.convert("RGB")) for image in images])
        images = torch.from_numpy(pixels).permute(0, 3, 1, 2)
    if not isinstance(images, torch.Tensor):
        raise VaeganError(f"images: expected a tensor or PIL images, got {type(images).__name__}")
    if images.dim() == 3:
        images = images.unsqueeze(0)
    if images.dim() != 4 or images.shape[1:] != (3, SIDE, SIDE) or len(images) == 0:
        raise VaeganError(f"images: expected shape [N,3,{SIDE},{SIDE}] with N >= 1, got {list(images.shape)} "
                          "(PIL images of any size are resized)")
    if images.dtype == torch.uint8:
        return PIXEL_VALUES[images.long()].to(device)
    if not images.is_floating_point():
        raise VaeganError(f"images: expected uint8 pixels or [-1,1] floats, got {images.dtype}")
    if not torch.isfinite(images).all() or images.min() < -1 or images.max() > 1:
        raise VaeganError("images: float images must lie in [-1, 1] (give uint8 pixels for 0..255)")
    return images.to(device=device, dtype=torch.float32)


def model_output(images: torch.Tensor, output: str) -> torch.Tensor | list[Image.Image]:
    """The networks' [-1, 1] images as `output` asks: uint8 (CPU), pil or float (as they are)."""
    if output == "float":
        return images.detach()
    pixels = to_uint8(images)
    if output == "uint8":
        return pixels
    return [Image.fromarray(np.ascontiguousarray(p.permute(1, 2, 0).numpy()), mode="RGB") for p in pixels]


def check_output(output: str) -> None:
    if output not in OUTPUTS:
        raise VaeganError(f"output={output!r}: choose one of {', '.join(OUTPUTS)}")


def label_tensor(labels: Labels, count: int, class_names: list[str], num_classes: int, device: torch.device
                 ) -> torch.Tensor | None:
    """Labels as the networks take them: int64 [count]; one label is repeated, names are looked up. None for an
    unconditional model (which refuses labels)."""
    if not num_classes:
        if labels is not None:
            raise VaeganError("this model is unconditional: it takes no labels")
        return None
    if labels is None:
        raise VaeganError(f"this model is conditional: give labels (class indices 0-{num_classes - 1} or names)")
    if isinstance(labels, torch.Tensor):
        values = labels.reshape(-1).tolist()
    elif isinstance(labels, (numbers.Integral, str)):
        values = [labels]
    else:
        values = list(labels)
    indices = [class_index(value, class_names, num_classes) for value in values]
    if len(indices) == 1:
        indices *= count
    if len(indices) != count:
        raise VaeganError(f"labels: got {len(indices)} for {count} images (give one, or one per image)")
    return torch.tensor(indices, dtype=torch.int64, device=device)


def class_index(value: numbers.Integral | str, class_names: list[str], num_classes: int) -> int:
    """A class given by index or by name, checked against the model's classes."""
    if isinstance(value, str):
        if value not in class_names:
            shown = ", ".join(class_names[:10]) + (", ..." if len(class_names) > 10 else "")
            raise VaeganError(f"unknown class {value!r}: this model's classes are {shown}")
        return class_names.index(value)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not 0 <= value < num_classes:
        raise VaeganError(f"class {value!r}: this model has classes 0-{num_classes - 1}")
    return int(value)
