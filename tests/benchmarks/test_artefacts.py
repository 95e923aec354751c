"""benchmarks/artefacts.py: each measure responds to its artefact and to nothing else on clean images, and
the script measures runs."""

import subprocess
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "artefacts.py"


def smooth_images(n: int = 4) -> torch.Tensor:
    """Soft colour layouts: upsampled 4x4 patterns, no pixel-scale structure."""
    coarse = torch.rand(n, 3, 4, 4, generator=torch.Generator().manual_seed(0)) * 1.6 - 0.8
    return F.interpolate(coarse, size=32, mode="bilinear", align_corners=False)


def test_the_checkerboard_measure_sees_a_period_2_pattern(benchmark_script):
    artefacts = benchmark_script("artefacts")
    clean = smooth_images()
    pattern = 0.1 * (torch.arange(32)[:, None] + torch.arange(32)[None]).remainder(2).float().mul(2).sub(1)
    assert artefacts.checkerboard_energy(clean + pattern) > 50 * artefacts.checkerboard_energy(clean)


def test_the_speckle_measure_counts_isolated_coloured_dots_in_flat_areas_only(benchmark_script):
    artefacts = benchmark_script("artefacts")
    flat = torch.full((1, 3, 32, 32), 0.6)
    assert artefacts.speckle_share(flat) == 0
    dotted = flat.clone()
    dotted[0, 2, 10, 10] = -0.6  # a yellow dot: the blue channel drops at one pixel
    dotted[0, 0, 20, 5] = -0.4
    assert round(artefacts.speckle_share(dotted) * 30 * 30) == 2  # of the 30x30 interior pixels
    edges = smooth_images(1)
    edges[0, :, :, 16:] = -edges[0, :, :, 16:]  # a hard edge is not speckle
    assert artefacts.speckle_share(edges) == 0


def test_saturation_counts_values_at_black_or_white(benchmark_script):
    artefacts = benchmark_script("artefacts")
    images = torch.zeros(1, 3, 4, 4)
    images[0, 0, 0, :2] = torch.tensor([1.0, -1.0])
    assert abs(artefacts.saturated_share(images) - 2 / 48) < 1e-7


def test_the_script_prints_a_row_per_run(tiny_run):
    run = tiny_run("artefacts", {"model.name": "vaegan", "model.conditional": True})
    result = subprocess.run([sys.executable, str(SCRIPT), str(run), "--n", "16"], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    row = result.stdout.strip().splitlines()[-1]
    assert row.startswith(f"| {run} |") and row.count("|") == 5
