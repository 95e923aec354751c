"""benchmarks/throughput.py: the matrix-product shapes it times must be the step's own work, all of it."""

import importlib.util
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "throughput.py"


@pytest.fixture(scope="module")
def throughput():
    spec = importlib.util.spec_from_file_location("throughput", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_step_gemm_shapes_cover_the_counted_flops(throughput):
    cpu = torch.device("cpu")
    counted, shapes = throughput.training_step_work(4, cpu)
    assert sum(2 * m * k * n for m, k, n in shapes) / 4 / 1e9 == pytest.approx(counted, rel=1e-9)
    # 7 convs and 3 linears, three passes each, but no input gradient for the first conv (the images)
    assert len(shapes) == 29
    assert (4 * 16 * 16, 3 * 16, 128) in shapes  # first conv forward: 4x4 patches of 3 channels at 16x16

