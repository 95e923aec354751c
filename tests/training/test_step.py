import copy
import io

import pytest
import torch
from torch import nn

from vaegan.config import LossConfig, ModelConfig
from vaegan.models import build_model
from vaegan.speed.settings import SpeedSettings, apply_speed_settings, speed_defaults
import vaegan.training.step as step_module
from vaegan.training import TrainStep, build_adam

KEYS = {"loss", "recon", "kl", "mse_per_pixel"}
BETA = 4.0
EAGER = SpeedSettings()
CPU = speed_defaults("cpu")
# Every model-side setting on, whatever this machine's defaults are (fast_dropout is off on Intel + MKL).
ALL_ON = SpeedSettings(channels_last=True, fused_adam=CPU.fused_adam, fast_dropout=True, gemm_weight_grad=True)
SETTINGS = pytest.mark.parametrize("settings", [EAGER, CPU, ALL_ON], ids=["eager", "cpu-defaults", "all-on"])
# Bit-exactness also at width 64, where gemm_weight_grad switches the middle convs (as in the reference VAE).
EXACT = pytest.mark.parametrize("settings,channels", [(EAGER, 8), (CPU, 8), (ALL_ON, 8), (CPU, 64)],
                                ids=["eager", "cpu-defaults", "all-on", "cpu-defaults-wide"])


def build(settings: SpeedSettings, dropout: float = 0.3, seed: int = 0, lr: float = 1e-3, channels: int = 8):
    """The trainer's order: model -> apply settings -> optimiser -> step."""
    torch.manual_seed(seed)
    model = apply_speed_settings(build_model(ModelConfig(latent_dim=8, dropout=dropout, noise_scale=0.3,
                                                     channels=channels)), settings)
    optimizer = build_adam(model.parameters(), lr, 1e-4, (0.9, 0.999), fused=settings.fused_adam)
    return model, optimizer, TrainStep(model, optimizer, LossConfig(beta=BETA), speed=settings)


def batch(n: int = 4, seed: int = 1) -> torch.Tensor:
    return torch.rand(n, 3, 32, 32, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def smooth_batch(n: int = 4, seed: int = 1) -> torch.Tensor:
    """Images a small VAE can learn in a few steps: upsampled 4x4 colour patterns."""
    coarse = torch.rand(n, 3, 4, 4, generator=torch.Generator().manual_seed(seed)) * 2 - 1
    return torch.nn.functional.interpolate(coarse, size=32, mode="bilinear", align_corners=False)


def snapshot(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    out = {f"model.{k}": v.clone() for k, v in model.state_dict().items()}
    for i, state in optimizer.state_dict()["state"].items():
        out.update({f"optim.{i}.{k}": v.clone() for k, v in state.items()})
    return out


def assert_bitwise_equal(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


@SETTINGS
def test_step_returns_the_logged_values_detached(settings):
    _, _, step = build(settings)
    out = step(batch()).values
    assert set(out) == KEYS
    assert all(v.dim() == 0 and not v.requires_grad for v in out.values())
    assert torch.allclose(out["loss"], out["recon"] + BETA * out["kl"])
    assert torch.allclose(out["mse_per_pixel"], out["recon"] / (3 * 32 * 32))


@SETTINGS
def test_steps_reduce_the_loss_on_a_fixed_batch(settings):
    _, _, step = build(settings, lr=1e-2)
    x = smooth_batch()
    losses = [step(x).values["loss"].item() for _ in range(12)]
    assert sum(losses[-3:]) / 3 < 0.7 * losses[0]


@EXACT
def test_speed_settings_are_bitwise_reproducible_across_fresh_runs(settings, channels):
    results = []
    for _ in range(2):
        model, optimizer, step = build(settings, channels=channels)
        logged = [step(batch(seed=s)).values for s in range(3)]
        results.append((snapshot(model, optimizer), torch.stack([o["loss"] for o in logged])))
    assert_bitwise_equal(results[0][0], results[1][0])
    assert torch.equal(results[0][1], results[1][1])


@EXACT
def test_resume_through_a_saved_state_is_bit_exact(settings, channels):
    model, optimizer, step = build(settings, channels=channels)
    for s in range(4):
        step(batch(seed=s))
    straight = snapshot(model, optimizer)

    model, optimizer, step = build(settings, channels=channels)
    for s in range(2):
        step(batch(seed=s))
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "optim": optimizer.state_dict(), "rng": torch.get_rng_state()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    model, optimizer, step = build(settings, seed=123, channels=channels)  # fresh objects, other init: everything comes from `saved`
    model.load_state_dict(saved["model"])
    optimizer.load_state_dict(saved["optim"])
    torch.set_rng_state(saved["rng"])
    for s in range(2, 4):
        step(batch(seed=s))
    assert_bitwise_equal(straight, snapshot(model, optimizer))


def test_speed_settings_do_not_change_the_math():
    """Without dropout both runs draw the same sampling noise: the first loss agrees up to rounding."""
    first = [build(settings, dropout=0.0)[2](batch()).values["loss"] for settings in (EAGER, ALL_ON)]
    assert torch.allclose(first[0], first[1], rtol=1e-5)


def test_loading_optimizer_state_of_another_layout_is_realigned():
    """Fused Adam pairs param, grad and state by raw offset: a contiguous state loaded into a channels_last run
    (a checkpoint from a plain run) must be re-laid out, or the update silently mixes up elements."""
    torch.manual_seed(0)
    start, grads = torch.randn(8, 4, 3, 3), [torch.randn(8, 4, 3, 3) for _ in range(2)]
    plain = nn.Parameter(start.clone())
    fast = nn.Parameter(start.clone().contiguous(memory_format=torch.channels_last))
    plain_opt = build_adam([plain], 1e-3, 0.0, (0.9, 0.999))
    fast_opt = build_adam([fast], 1e-3, 0.0, (0.9, 0.999), fused=CPU.fused_adam)
    plain.grad = grads[0].clone()
    plain_opt.step()
    with torch.no_grad():
        fast.copy_(plain)
    fast_opt.load_state_dict(copy.deepcopy(plain_opt.state_dict()))
    assert all(v.stride() == fast.stride() for v in fast_opt.state[fast].values() if v.dim() > 1)
    plain.grad = grads[1].clone()
    fast.grad = grads[1].clone().contiguous(memory_format=torch.channels_last)
    plain_opt.step()
    fast_opt.step()
    assert torch.allclose(plain, fast, atol=1e-7)


@pytest.mark.parametrize("settings", [EAGER, CPU], ids=["eager", "cpu-defaults"])
def test_a_non_finite_gradient_with_a_finite_loss_changes_nothing_and_is_counted(settings):
    model, optimizer, step = build(settings)
    step(batch(seed=0))  # Adam has state now
    before = snapshot(model, optimizer)
    weight = model.decoder.project.weight
    hook = weight.register_hook(lambda grad: torch.where(torch.arange(grad.numel()).view_as(grad) == 7,
                                                         torch.tensor(float("nan")), grad))
    out = step(batch(seed=1))
    hook.remove()
    assert out.skipped and torch.isfinite(out.values["loss"])
    assert_bitwise_equal(before, snapshot(model, optimizer))  # weights, BatchNorm buffers and Adam state
    assert not step(batch(seed=1)).skipped  # the next clean step trains as usual


@pytest.fixture
def fresh_probes():
    """The protocol probes run again in this test and after it (their answers are cached per process)."""
    probes = (step_module.non_finite_check_works, step_module.found_inf_skip_works)
    for probe in probes:
        probe.cache_clear()
    yield
    for probe in probes:
        probe.cache_clear()


def nan_gradient_step(model, optimizer, step) -> None:
    """A clean step (Adam has state), then one whose gradient has a NaN but whose loss is finite: skipped."""
    step(batch(seed=0))
    before = snapshot(model, optimizer)
    hook = model.decoder.project.weight.register_hook(lambda grad: grad * float("nan"))
    out = step(batch(seed=1))
    hook.remove()
    assert out.skipped and torch.isfinite(out.values["loss"])
    assert_bitwise_equal(before, snapshot(model, optimizer))


def test_the_private_skip_protocols_hold_on_this_torch(fresh_probes):
    assert step_module.non_finite_check_works(torch.device("cpu"))
    if CPU.fused_adam:
        assert step_module.skips_on_found_inf(build_adam([nn.Parameter(torch.zeros(2))], 1e-3, 0.0, (0.9, 0.999),
                                                         fused=True))


def test_a_no_op_non_finite_check_falls_back_warns_once_and_still_skips(fresh_probes, monkeypatch, caplog):
    monkeypatch.setattr(torch, "_amp_foreach_non_finite_check_and_unscale_", lambda *args: None)
    model, optimizer, step = build(CPU)
    nan_gradient_step(model, optimizer, step)
    nan_gradient_step(model, optimizer, step)
    assert len(caplog.records) == 1 and "non-finite gradient check does not work" in caplog.records[0].message


def test_an_optimizer_that_ignores_found_inf_falls_back_warns_once_and_still_skips(fresh_probes, caplog):
    class IgnoresFoundInf(torch.optim.Adam):
        def step(self, closure=None):
            self.found_inf = None
            return super().step(closure)

    torch.manual_seed(0)
    model = build_model(ModelConfig(latent_dim=8, channels=8))
    optimizer = IgnoresFoundInf(model.parameters(), lr=1e-3, fused=True)
    step = TrainStep(model, optimizer, LossConfig(beta=BETA))
    nan_gradient_step(model, optimizer, step)
    nan_gradient_step(model, optimizer, step)
    assert len(caplog.records) == 1 and "does not skip its step on found_inf" in caplog.records[0].message
