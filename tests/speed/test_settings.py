"""What train.speed and the keys beside it resolve to, the defaults per device, the CPU thread count under load,
and what applying the settings to a model changes (its layout and dropout layers, never its weights)."""

import sys

import pytest
import torch
from torch import nn

from vaegan.config import Config, ModelConfig, apply_overrides
from vaegan.models import build_model
from vaegan.speed import settings as speed
from vaegan.speed.fast_dropout import FastDropout


def train_cfg(**overrides):
    return apply_overrides(Config(), overrides).train


def test_the_keys_beside_train_speed_override_single_settings():
    cpu = torch.device("cpu")
    assert speed.resolve_speed(train_cfg(**{"train.speed": "eager"}), cpu) == speed.SpeedSettings()
    chosen = speed.resolve_speed(train_cfg(**{"train.precision": "bf16", "train.compile": "default",
                                              "train.threads": 1}), cpu)
    assert (chosen.precision, chosen.compile, chosen.num_threads, chosen.channels_last) == ("bf16", "default", 1,
                                                                                         True)
    assert "precision=bf16" in chosen.describe() and "compile=default" in chosen.describe()
    cuda = speed.resolve_speed(train_cfg(**{"train.tf32": False}), torch.device("cuda"))
    assert not cuda.tf32 and cuda.cudnn_benchmark and cuda.fused_adam
    assert not cuda.cuda_graph  # auto: off until gpu_check has measured it faster
    assert speed.resolve_speed(train_cfg(**{"train.graph": "on"}), torch.device("cuda")).cuda_graph
    assert not speed.resolve_speed(train_cfg(**{"train.graph": "off"}), cpu).cuda_graph


def test_a_cuda_graph_on_a_cpu_is_one_line_naming_the_key(tmp_path, capsys):
    from vaegan.cli import main

    code = main(["train", "--preset", "vae-cifar10", "--run-dir", str(tmp_path / "run"), "data.name=shapes10",
                 "train.device=cpu", "train.graph=on", "train.max_steps=1"])
    assert code == 2 and "train.graph=on needs a CUDA device" in capsys.readouterr().err
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_a_run_recorded_before_train_graph_keeps_its_settings_on_resume():
    cpu = torch.device("cpu")
    settings = speed.SpeedSettings(channels_last=True, num_threads=1)
    record = speed.speed_record(train_cfg(), cpu, settings)
    del record["request"]["graph"]
    assert speed.run_speed(train_cfg(), cpu, record) == settings


@pytest.mark.parametrize("busy, threads", [(0.1, 2), (1.2, 1), (1.9, 1), (None, 2)])
def test_a_cpu_run_takes_threads_for_the_free_cores(monkeypatch, busy, threads):
    monkeypatch.setattr(speed, "busy_cores", lambda: busy)
    monkeypatch.setattr(speed.os, "cpu_count", lambda: 2)
    assert speed.threads_for_free_cores(default=2) == threads


def test_busy_cores_sees_a_spinning_thread():
    import threading
    import time

    stop = time.monotonic() + 1.0
    worker = threading.Thread(target=lambda: [None for _ in iter(lambda: time.monotonic() > stop, True)])
    worker.start()
    busy = speed.busy_cores(0.3)
    worker.join()
    assert busy is not None and 0.5 < busy <= speed.os.cpu_count()


def test_a_bf16_cpu_step_with_speed_auto_runs_and_matches_eager():
    """At width 64, where the fp32 defaults switch the middle convs to gemm_weight_grad (it failed under bf16).
    One SGD step, without BatchNorm (a conv bias in front of it has a gradient of rounding noise only)."""
    from vaegan.config import LossConfig, ModelConfig
    from vaegan.models import build_model
    from vaegan.training import TrainStep

    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    results = []
    for mode in ("auto", "eager"):
        settings = speed.resolve_speed(train_cfg(**{"train.speed": mode, "train.precision": "bf16",
                                                    "train.threads": 1}), torch.device("cpu"))
        assert not settings.gemm_weight_grad
        torch.manual_seed(0)
        model = speed.apply_speed_settings(build_model(ModelConfig(latent_dim=8, dropout=0.0, batchnorm=False,
                                                                   noise_scale=0.3, channels=64)), settings)
        before = [p.detach().clone() for p in model.parameters()]
        loss = TrainStep(model, torch.optim.SGD(model.parameters(), lr=1.0), LossConfig(), speed=settings)(x)
        results.append((loss.values["loss"], [p.detach() - b for p, b in zip(model.parameters(), before)]))
    (auto_loss, auto_steps), (eager_loss, eager_steps) = results
    assert torch.isclose(auto_loss, eager_loss, rtol=1e-3)
    # bf16 rounds to 2^-8; in another memory layout the gradients differ by up to ~7% after 15 layers
    assert all((a - e).norm() <= 0.15 * e.norm() for a, e in zip(auto_steps, eager_steps))


def test_speed_defaults_per_device():
    cpu = speed.speed_defaults("cpu")
    assert cpu.channels_last and cpu.compile == "off" and cpu.precision == "fp32" and not cpu.tf32
    assert cpu.reuse_host_memory == sys.platform.startswith("linux")
    assert cpu.fused_adam == (tuple(int(p) for p in torch.__version__.split(".")[:2]) >= (2, 4))
    cuda = speed.speed_defaults(torch.device("cuda"))
    assert cpu.gemm_weight_grad
    assert cuda.channels_last and cuda.fused_adam and not cuda.fast_dropout and cuda.compile == "off"
    assert cuda.tf32 and cuda.cudnn_benchmark and cuda.precision == "fp32"
    assert not cuda.gemm_weight_grad
    assert not cuda.reuse_host_memory
    assert speed.speed_defaults("mps") == speed.SpeedSettings()
    assert speed.SpeedSettings().describe() == "eager"


def test_apply_speed_settings_keeps_the_state_dict_and_swaps_only_dropout():
    torch.manual_seed(0)
    plain = build_model(ModelConfig(latent_dim=8, dropout=0.3, channels=8))
    torch.manual_seed(0)
    all_on = speed.SpeedSettings(channels_last=True, fast_dropout=True, gemm_weight_grad=True)
    fast = speed.apply_speed_settings(build_model(ModelConfig(latent_dim=8, dropout=0.3, channels=8)), all_on)
    assert all(torch.equal(a, b) for a, b in zip(plain.state_dict().values(), fast.state_dict().values(), strict=True))
    fast.load_state_dict(plain.state_dict())  # checkpoints move freely between the two
    dropouts = [m for m in fast.modules() if isinstance(m, nn.Dropout)]
    assert dropouts and all(type(m) is FastDropout and m.p == 0.3 for m in dropouts)
    convs = [m.weight for m in fast.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    assert all(w.is_contiguous(memory_format=torch.channels_last) for w in convs)
    plain.eval(), fast.eval()
    x = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1
    assert torch.allclose(plain(x)[0], fast(x)[0], atol=1e-5)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc tuning is Linux-only")
def test_host_memory_reuse_can_be_switched_on_and_back_off():
    try:
        assert speed.set_host_memory_reuse(True) in (True, False)  # False only without glibc (e.g. musl)
    finally:
        speed.set_host_memory_reuse(False)
