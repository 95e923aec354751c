"""Where a run computes: the best available accelerator unless the config names one."""

from __future__ import annotations

import torch

from vaegan.errors import VaeganError


def select_device(requested: str = "auto") -> torch.device:
    if requested == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(requested)
    except RuntimeError:  # torch's own message lists every backend it was built with, most of them not ours
        raise VaeganError(f"device {requested!r} is not a device: use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise VaeganError(f"train.device={requested} but CUDA is not available here; use train.device=auto or cpu")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise VaeganError(f"train.device={requested} but only {torch.cuda.device_count()} CUDA device(s) exist")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise VaeganError(f"train.device={requested} but Apple MPS is not available here; use train.device=auto or cpu")
    return device
