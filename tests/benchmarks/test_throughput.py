"""benchmarks/throughput.py: the matrix-product shapes it times must be the step's own work, all of it."""

import pytest
import torch


@pytest.fixture(scope="module")
def throughput(benchmark_script):
    return benchmark_script("throughput")


def test_step_gemm_shapes_cover_the_counted_flops(throughput):
    cpu = torch.device("cpu")
    counted, shapes = throughput.training_step_work(4, cpu)
    assert sum(2 * m * k * n for m, k, n in shapes) / 4 / 1e9 == pytest.approx(counted, rel=1e-9)
    # 7 convs and 3 linears, three passes each, but no input gradient for the first conv (the images)
    assert len(shapes) == 29
    assert (4 * 16 * 16, 3 * 16, 128) in shapes  # first conv forward: 4x4 patches of 3 channels at 16x16



@pytest.mark.parametrize("grouped", [False, True])
def test_a_fused_candidate_times_k_runs_and_counts_all_their_images(throughput, grouped, monkeypatch):
    monkeypatch.setattr(throughput, "load_preset", lambda name: __import__("vaegan.config").config.apply_overrides(
        __import__("vaegan.config").config.load_preset(name), {"model.channels": 8, "model.latent_dim": 8}))
    candidate = throughput.Candidate("fused", throughput.SpeedSettings(), 4, torch.device("cpu"),
                                     preset="cvaegan-cifar100", members=3, grouped=grouped)
    candidate.warm_up(2)
    candidate.timed(2)
    assert candidate.batch_size == 12 and candidate.images_per_second > 0
    assert type(candidate.step).__name__ == ("GroupedStep" if grouped else "MemberSteps")
