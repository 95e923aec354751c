"""Speed settings through whole runs: bf16 autocast learns and resumes exactly, a compiled run keeps its parameter
names, a CUDA-graphed run equals the eager one (benchmarks/gpu_check.py runs these on a GPU too)."""

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
    short = {**cfg, "train.max_steps": 8, "train.eval_images": 32}  # resumption needs steps, not learning
    train(tiny(**short), tmp_path / "short")
    train(tiny(**{**short, "train.max_steps": 4}), tmp_path / "resumed")
    resume(tmp_path / "resumed", {"train.max_steps": 8})
    straight = torch.load(tmp_path / "short" / "model.pt", weights_only=True)
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


@pytest.mark.slow
@pytest.mark.parametrize("device", ["cuda"] if torch.cuda.is_available() else [])  # run by the device suite
def test_a_graphed_run_equals_the_eager_run_over_20_steps_and_resumes_exactly(tmp_path, tiny, device):
    """train.graph=on replays the eager step's own kernels: the same numbers up to TF32 and cuDNN's choice of
    algorithm per call (1e-4 of each value's scale), and a graphed resume continues the graphed run."""
    cfg = {"train.device": device, "model.name": "vaegan", "model.conditional": True, "model.dropout": 0.3,
           "train.ema_decay": 0.9, "data.hflip": True, "data.crop_padding": 2, "train.max_steps": 20,
           "train.ckpt_every": 1000}
    graphed = train(tiny(**cfg, **{"train.graph": "on"}), tmp_path / "graphed")
    train(tiny(**cfg, **{"train.graph": "off"}), tmp_path / "eager")
    assert graphed["speed"]["settings"]["cuda_graph"]
    records = [[r for r in read_metrics(tmp_path / run / "metrics.jsonl") if r["kind"] == "train"]
               for run in ("graphed", "eager")]
    for a, b in zip(*records):
        assert all(abs(a[k] - b[k]) <= 1e-4 * max(1.0, abs(b[k])) for k in b if isinstance(b[k], float) and k != "time")
    weights = [torch.load(tmp_path / run / "model.pt", weights_only=True) for run in ("graphed", "eager")]
    assert all(torch.allclose(weights[0][k].float(), v.float(), rtol=1e-4, atol=1e-5) for k, v in weights[1].items())
    train(tiny(**cfg, **{"train.graph": "on", "train.max_steps": 10}), tmp_path / "resumed")
    resume(tmp_path / "resumed", {"train.max_steps": 20})
    resumed = torch.load(tmp_path / "resumed" / "model.pt", weights_only=True)
    assert all(torch.allclose(resumed[k].float(), v.float(), rtol=1e-4, atol=1e-5) for k, v in weights[0].items())
