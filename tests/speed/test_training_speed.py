"""Speed settings through whole runs: bf16 autocast learns and resumes exactly, a compiled run keeps its parameter
names (benchmarks/gpu_check.py runs these on a GPU too)."""

import pytest
import torch

from vaegan.experiment import resume, train
from vaegan.runs.metrics import read_metrics


@pytest.mark.slow
def test_bf16_learns_and_resumes_exactly(tmp_path, tiny, device):
    cfg = {"train.device": device, "model.channels": 16, "model.latent_dim": 16, "train.batch_size": 32, "train.max_steps": 120,
           "train.eval_images": 256, "train.precision": "bf16", "train.ckpt_every": 1000}
    summary = train(tiny(**cfg), tmp_path / "straight")
    tests = [r for r in read_metrics(tmp_path / "straight" / "metrics.jsonl") if r["kind"] == "test"]
    assert summary["speed"]["settings"]["precision"] == "bf16"
    assert tests[-1]["mse_per_pixel"] < 0.5 * tests[0]["mse_per_pixel"]
    train(tiny(**{**cfg, "train.max_steps": 60}), tmp_path / "resumed")
    resume(tmp_path / "resumed", {"train.max_steps": 120})
    straight = torch.load(tmp_path / "straight" / "model.pt", weights_only=True)
    resumed = torch.load(tmp_path / "resumed" / "model.pt", weights_only=True)
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)


@pytest.mark.slow
def test_a_compiled_run_keeps_its_parameter_names_and_resumes(tmp_path, tiny):
    cfg = tiny(**{"model.name": "vaegan", "model.conditional": True, "train.compile": "default"})
    summary = train(cfg, tmp_path / "run")
    assert summary["speed"]["settings"]["compile"] == "default"
    state = torch.load(tmp_path / "run" / "model.pt", weights_only=True)
    assert not any("_orig_mod" in key for key in state)  # compiled in place: the checkpoint loads anywhere
    assert resume(tmp_path / "run", {"train.max_steps": 3})["step"] == 3
