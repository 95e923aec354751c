"""select_device: a device name torch does not know is one VaeganError, not torch's RuntimeError."""

import pytest
import torch

from vaegan.errors import VaeganError
from vaegan.runs.device import select_device


def test_cpu_is_selected_as_named():
    assert select_device("cpu") == torch.device("cpu")


@pytest.mark.parametrize("name", ["tpu", "", "cuda:x", "gpu0"])
def test_an_unknown_device_name_is_one_error_naming_the_choices(name):
    with pytest.raises(VaeganError, match=r"is not a device: use auto, cpu, cuda, cuda:N or mps"):
        select_device(name)
