"""benchmarks/batchnorm_gap.py: batch statistics reach the asked-for network only, the measured model is left
as it was, and the script prints one row of four MSEs per run."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from vaegan.evaluation.run import load_run

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "batchnorm_gap.py"
CONDITIONAL_VAEGAN = {"model.name": "vaegan", "model.conditional": True}


def training_norms(network: nn.Module) -> list[bool]:
    return [layer.training for layer in network.modules() if isinstance(layer, nn.modules.batchnorm._BatchNorm)]


def test_batch_statistics_reach_the_named_part_only_and_leave_the_model_alone(benchmark_script, tiny_run):
    gap = benchmark_script("batchnorm_gap")
    model = load_run(tiny_run("batchnorm-gap", CONDITIONAL_VAEGAN), "cpu").model
    before = {name: value.clone() for name, value in model.state_dict().items()}
    for part, encoder, decoder in (("none", False, False), ("all", True, True), ("encoder", True, False),
                                   ("decoder", False, True)):
        copied = gap.with_batch_statistics(model, part)
        assert not copied.training
        assert set(training_norms(copied.encoder)) == {encoder}
        assert set(training_norms(copied.decoder)) == {decoder}
        x, y = torch.rand(8, 3, 32, 32) * 2 - 1, torch.arange(8) % 10
        gap.test_mse(copied, [(x, y)])
    assert not any(training_norms(model))
    assert all(torch.equal(before[name], value) for name, value in model.state_dict().items())


def test_running_statistics_give_the_eval_mode_mse(benchmark_script, tiny_run):
    gap = benchmark_script("batchnorm_gap")
    model = load_run(tiny_run("batchnorm-gap-eval", CONDITIONAL_VAEGAN), "cpu").model
    x, y = torch.rand(6, 3, 32, 32) * 2 - 1, torch.arange(6)
    with torch.inference_mode():
        expected = (model(x, y)[0] - x).square().mean().item()
    assert abs(gap.test_mse(gap.with_batch_statistics(model, "none"), [(x, y)]) - expected) < 1e-6


def test_the_script_prints_four_mses_per_run_and_refuses_a_gan(tiny_run):
    run = tiny_run("batchnorm-gap-script", CONDITIONAL_VAEGAN)
    result = subprocess.run([sys.executable, str(SCRIPT), str(run), "--n", "16", "--batch", "8"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    row = result.stdout.strip().splitlines()[-1]
    assert row.startswith(f"| {run} |") and row.count("|") == 6
    gan = tiny_run("batchnorm-gap-gan", {"model.name": "gan"})
    refused = subprocess.run([sys.executable, str(SCRIPT), str(gan)], capture_output=True, text=True, timeout=300)
    assert refused.returncode != 0
    assert refused.stderr.strip().splitlines() == [f"batchnorm_gap.py: error: {gan} holds a GAN: it has no "
                                                   "encoder, so no reconstructions to measure"]


@pytest.mark.parametrize("flag", ["--n", "--batch"])
def test_a_count_below_one_is_one_usage_error_before_any_run_is_read(flag, tmp_path):
    result = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path), flag, "0"], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip().splitlines()[-1].endswith("--batch and --n must be at least 1, got "
                                                           + ("--batch 128 --n 0" if flag == "--n" else
                                                              "--batch 0 --n 1000"))
