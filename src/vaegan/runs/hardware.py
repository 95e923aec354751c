"""What a run ran on, in words, for summaries and reports."""

from __future__ import annotations

import platform

import torch


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe_hardware(device: torch.device) -> dict[str, str | int]:
    info: dict[str, str | int] = {"device": str(device), "cpu": cpu_name(), "torch_threads": torch.get_num_threads(),
                                  "torch": torch.__version__, "python": platform.python_version()}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info
