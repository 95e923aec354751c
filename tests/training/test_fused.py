"""Fused groups (vaegan.training.fused): K runs in one process, each exactly its run alone.

Each member's own step (the CPU path) is compared bit for bit. The grouped model (the GPU path, run here on
the CPU) sums in another order than the members' own layers (a grouped convolution, a batched matrix product,
BatchNorm over K*C channels): float32 rounding of ~1e-7 per operation. Adam divides each gradient by its own
running size, so where a gradient is rounding noise (biases that a BatchNorm right after them cancels, units
that barely move) the two runs step +-lr apart: a weight can differ by up to 2 * lr per step, the bound the
weights are held to (WEIGHT_BOUND). Through the running means that absorb those biases, eval-mode numbers (test
metrics, reconstructions) move too: measured over 24 steps, logged values differ by at most 1% (test KL) and
the final reconstructions by 0.015 of the [-1, 1] range, against the tolerances below.
"""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from vaegan.ablation.runner import CellJob, SuiteOptions, fused_groups
from vaegan.cli import main
from vaegan.config import Config, apply_overrides
from vaegan.errors import VaeganError
from vaegan.evaluation.run import load_run
from vaegan.experiment import train, train_fused
from vaegan.runs import RunDir
from vaegan.runs.metrics import read_metrics
from vaegan.training import step as standalone_step
from vaegan.training.fused import step as fused_step
from vaegan.training.fused.trainer import fuse_key

LOGGED_TOLERANCE = 2e-2  # relative, with 0.1 as the floor of the scale (values near 0: d_fake)
# D's logits are about 1 in size, but their means (d_fake, d_real, the hinge G loss) cross 0: those compare at
# the logits' scale
LOGIT_FLOOR = {"gan": 0.5, "d_fake": 0.5, "d_real": 0.5}
PIXEL_TOLERANCE = 0.05  # of the final models' reconstructions and samples, in [-1, 1]
WEIGHT_BOUND = 2  # weights differ by at most WEIGHT_BOUND * lr per step (both runs take Adam steps of ~lr)

TINY = {"data.name": "shapes10", "data.train_subset": 160, "model.channels": 8, "model.d_channels": 8,
        "model.latent_dim": 8, "model.embed_dim": 4, "model.dropout": 0.3, "data.hflip": True,
        "data.crop_padding": 2, "optim.weight_decay": 1e-4, "train.batch_size": 16, "train.max_steps": 24,
        "train.ckpt_every": 7, "train.epoch_work_steps": 10, "train.eval_images": 32, "train.device": "cpu"}
VAEGAN = {"model.name": "vaegan", "model.conditional": True, "train.ema_decay": 0.9, "train.vae_warmup_epochs": 1,
          "loss.feature_weight": 0.5, "loss.perceptual_weight": 0.5, "model.d_classifier": True,
          "loss.class_weight": 0.3}
# The quality options (docs/quality.md) in place of feature matching, which DiffAugment excludes; each member its
# own augmentation policy.
QUALITY = {**VAEGAN, "loss.feature_weight": 0.0, "model.class_norm": True, "model.prior": "class",
           "model.upsample": "resize", "loss.gan_loss": "hinge", "model.d_classifier": True,
           "model.split_bn_stats": True}
QUALITY_MEMBERS = [{"loss.d_augment": "translation", "loss.class_weight": 0.5},
                   {"loss.d_augment": "color,translation,cutout", "loss.class_weight": 0.2,
                    "model.sample_bn_stats": "all"}]
MEMBERS = [{"train.seed": 0, "loss.beta": 1.0},
           {"train.seed": 1, "loss.beta": 4.0, "optim.lr": 5e-4, "model.noise_scale": 0.3}]


def configs(model: str, classifier_file, tmp_path, **overrides) -> list[Config]:
    """The two members' configs: model "vae", "vaegan" or "quality" (the VAE-GAN with the quality options)."""
    extra = {"vae": {}, "vaegan": VAEGAN, "quality": QUALITY}[model]
    if extra:
        extra = {**extra, "loss.perceptual_weights": classifier_file(tmp_path / "perceptual.pt", 0)}
    own = QUALITY_MEMBERS if model == "quality" else [{}, {}]
    return [apply_overrides(Config(), {**TINY, **extra, **member, **mine, **overrides})
            for member, mine in zip(MEMBERS, own)]


def logged(run_dir) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "time"} for r in read_metrics(run_dir / "metrics.jsonl")]


def state(run_dir, optimizers: bool = True) -> dict[str, torch.Tensor]:
    """Everything a run's checkpoint holds in tensors: model, optimisers' moments, EMA."""
    payload = RunDir(run_dir).read_checkpoint()
    tensors = {f"model.{k}": v for k, v in payload["model"].items()}
    for name in ("optimizer", "d_optimizer") if optimizers else ():
        if payload[name]:
            tensors.update({f"{name}.{i}.{k}": v for i, entry in payload[name]["state"].items()
                            for k, v in entry.items()})
    if payload["ema"]:
        tensors.update({f"ema.{k}": v for k, v in payload["ema"]["shadow"].items()})
    return tensors


def assert_close_values(a: list[dict], b: list[dict]) -> None:
    assert [(r["kind"], r["step"]) for r in a] == [(r["kind"], r["step"]) for r in b]
    for x, y in zip(a, b):
        assert x.keys() == y.keys()
        for key, value in y.items():
            if isinstance(value, float):
                scale = max(abs(value), LOGIT_FLOOR.get(key, 0.1))
                assert abs(x[key] - value) <= LOGGED_TOLERANCE * scale, (y["step"], key, x[key], value)
            else:
                assert x[key] == value, (y["step"], key)


def assert_same_function(fused_dir, alone_dir) -> None:
    """Reconstructions and samples from fixed z of the two runs' final models, in eval mode."""
    fused, alone = load_run(fused_dir, "cpu"), load_run(alone_dir, "cpu")
    x, y = alone.dataset("test").images[:16].float() / 127.5 - 1, alone.dataset("test").labels[:16]
    z = torch.randn(16, fused.model.latent_dim, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        for a, b in ((fused.model(x, y)[0], alone.model(x, y)[0]),
                     (fused.model.generate(z, y), alone.model.generate(z, y))):
            assert (a - b).abs().max() <= PIXEL_TOLERANCE


@pytest.mark.parametrize("model,grouped", [("vae", False), ("vae", True), ("vaegan", False), ("vaegan", True),
                                           ("quality", True)],
                         ids=["vae-member-steps", "vae-grouped", "vaegan-member-steps", "vaegan-grouped",
                              "quality-grouped"])
def test_each_member_of_a_fused_group_is_its_run_alone(tmp_path, classifier_file, monkeypatch, model, grouped):
    """Seeds and beta differ; BN, dropout, flips and crops, and for the VAE-GAN spectral norm, EMA, VAE warm-up,
    feature matching, the perceptual loss and D's class head are on; 24 steps, checkpoints and test metrics on
    the way. The quality variant trades feature matching for conditional BatchNorm, the class prior, resize
    upsampling, G's second set of BatchNorm statistics, the hinge loss and a DiffAugment policy and class weight
    of each member's own."""
    monkeypatch.setattr("vaegan.training.fused.trainer.grouped_member_layers", lambda device: grouped)
    cfgs = configs(model, classifier_file, tmp_path)
    outcomes = train_fused(cfgs, [tmp_path / "f0", tmp_path / "f1"])
    assert all(isinstance(outcome, dict) for outcome in outcomes)
    for k, cfg in enumerate(cfgs):
        train(cfg, tmp_path / f"alone{k}")
        fused, alone = logged(tmp_path / f"f{k}"), logged(tmp_path / f"alone{k}")
        assert sum(r["kind"] == "test" for r in alone) >= 4
        fused_state, alone_state = state(tmp_path / f"f{k}"), state(tmp_path / f"alone{k}")
        assert fused_state.keys() == alone_state.keys()
        summary = json.loads((tmp_path / f"f{k}" / "summary.json").read_text())
        assert summary["fused"] == {"runs": [str(tmp_path / "f0"), str(tmp_path / "f1")], "member": k,
                                    "grouped": grouped}
        if not grouped:
            assert fused == alone
            assert all(torch.equal(fused_state[name], alone_state[name]) for name in alone_state)
            continue
        assert_close_values(fused, alone)
        bound = WEIGHT_BOUND * max(cfg.optim.lr, cfg.optim.d_lr) * cfg.train.max_steps
        fused_weights, alone_weights = state(tmp_path / f"f{k}", False), state(tmp_path / f"alone{k}", False)
        for name, value in alone_weights.items():
            if value.is_floating_point():
                assert (fused_weights[name] - value).abs().max() <= bound, name
        assert_same_function(tmp_path / f"f{k}", tmp_path / f"alone{k}")


def poison(module, monkeypatch, steps: set[int]) -> None:
    """Make the member with beta 4 compute a NaN loss at `steps` (counted in its own calls)."""
    original, calls = module.autoencoder_terms, []

    def poisoned(x_hat, x, mu, logvar, cfg, *rest):
        loss = original(x_hat, x, mu, logvar, cfg, *rest)
        if cfg.beta != 4.0:
            return loss
        calls.append(1)
        return loss * float("nan") if len(calls) in steps else loss
    monkeypatch.setattr(module, "autoencoder_terms", poisoned)


@pytest.mark.parametrize("grouped", [False, True], ids=["member-steps", "grouped"])
def test_a_nan_in_one_member_changes_nothing_in_the_other_and_a_diverged_member_fails_alone(
        tmp_path, monkeypatch, grouped):
    monkeypatch.setattr("vaegan.training.fused.trainer.grouped_member_layers", lambda device: grouped)
    cfgs = [apply_overrides(cfg, {"train.max_nonfinite": 3}) for cfg in configs("vae", None, tmp_path)]
    train_fused(cfgs, [tmp_path / "clean0", tmp_path / "clean1"])
    module = fused_step if grouped else standalone_step
    with monkeypatch.context() as patch:
        poison(module, patch, {5})
        outcomes = train_fused(cfgs, [tmp_path / "once0", tmp_path / "once1"])
    assert outcomes[1]["nonfinite_steps"] == 1 and outcomes[0]["nonfinite_steps"] == 0
    with monkeypatch.context() as patch:
        poison(module, patch, set(range(10, 100)))
        outcomes = train_fused(cfgs, [tmp_path / "diverged0", tmp_path / "diverged1"])
    assert isinstance(outcomes[0], dict) and isinstance(outcomes[1], VaeganError)
    assert "training diverged" in str(outcomes[1])
    assert not (tmp_path / "diverged1" / "summary.json").exists()
    assert RunDir(tmp_path / "diverged1").read_checkpoint()["step"] == 7  # the last good one
    clean = state(tmp_path / "clean0")
    for run in ("once0", "diverged0"):
        assert all(torch.equal(value, clean[name]) for name, value in state(tmp_path / run).items())
        assert logged(tmp_path / run) == logged(tmp_path / "clean0")


GRID = """
base: vae-cifar10
overrides: {data.name: shapes10, data.train_subset: 160, model.channels: 8, model.latent_dim: 8,
            model.dropout: 0.3, train.batch_size: 16, train.max_steps: 60, train.ckpt_every: 4,
            train.eval_images: 32, train.device: cpu, train.threads: 1}
variants:
  plain: {}
  beta4: {loss.beta: 4}
"""


@pytest.mark.slow  # a fused ablate process killed with SIGKILL, then run again
def test_a_fused_group_killed_mid_run_continues_bit_exactly(tmp_path):
    grid = tmp_path / "grid.yaml"
    grid.write_text(GRID)
    command = [sys.executable, "-m", "vaegan", "ablate", str(grid), "--seeds", "1", "--device", "cpu"]
    assert subprocess.run([*command, "--out", str(tmp_path / "straight")], capture_output=True,
                          timeout=600).returncode == 0
    killed = tmp_path / "killed"
    process = subprocess.Popen([*command, "--out", str(killed)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    checkpoint, deadline = killed / "beta4" / "seed0" / "checkpoints" / "last.pt", time.time() + 240
    while time.time() < deadline and process.poll() is None and not (
            checkpoint.is_file() and RunDir(checkpoint.parents[1]).read_checkpoint()["step"] >= 20):
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    stopped_at = RunDir(checkpoint.parents[1]).read_checkpoint()["step"]
    assert 20 <= stopped_at < 60, "the kill did not land mid-run"
    assert subprocess.run([*command, "--out", str(killed)], capture_output=True, timeout=600).returncode == 0
    for cell in ("plain/seed0", "beta4/seed0"):
        straight, resumed = state(tmp_path / "straight" / cell), state(killed / cell)
        assert all(torch.equal(value, straight[name]) for name, value in resumed.items())
        assert logged(killed / cell) == logged(tmp_path / "straight" / cell)
        assert json.loads((killed / cell / "summary.json").read_text())["fused"]["member"] in (0, 1)


def test_a_members_folder_resumes_evaluates_and_reports_alone(tmp_path, capsys):
    cfgs = configs("vae", None, tmp_path, **{"train.max_steps": 8})
    train_fused(cfgs, [tmp_path / "m0", tmp_path / "m1"])
    train_fused([], [tmp_path / "m0", tmp_path / "m1"], {"train.max_steps": 12})
    assert main(["train", "--resume", str(tmp_path / "m0"), "train.max_steps=12"]) == 2  # already there
    capsys.readouterr()
    train(apply_overrides(cfgs[0], {"train.max_steps": 8}), tmp_path / "alone")
    assert main(["train", "--resume", str(tmp_path / "alone"), "train.max_steps=12"]) == 0
    assert all(torch.equal(value, state(tmp_path / "alone")[name]) for name, value in state(tmp_path / "m0").items())
    assert main(["train", "--resume", str(tmp_path / "m1"), "train.max_steps=14"]) == 0
    assert main(["evaluate", str(tmp_path / "m1"), "--metrics", "recon", "--n", "32"]) == 0
    assert main(["report", str(tmp_path / "m1")]) == 0
    assert (tmp_path / "m1" / "eval.json").is_file() and (tmp_path / "m1" / "report.html").is_file()


def test_a_group_that_cannot_fuse_is_refused_before_any_folder_is_touched(tmp_path):
    cfgs = configs("vae", None, tmp_path)
    wide = apply_overrides(cfgs[1], {"model.channels": 16})
    with pytest.raises(VaeganError, match="cannot train fused"):
        train_fused([cfgs[0], wide], [tmp_path / "a", tmp_path / "b"])
    assert not any((tmp_path / name / "config.yaml").exists() for name in ("a", "b"))
    with pytest.raises(VaeganError, match="one run folder per config"):
        train_fused(cfgs, [tmp_path / "a"])
    with pytest.raises(VaeganError, match="at least one"):
        train_fused([], [])


def test_cells_fuse_by_shapes_and_schedule_not_by_values(tmp_path):
    def job(variant, seed, **overrides):
        cfg = apply_overrides(Config(), {**TINY, "train.seed": seed, **overrides})
        return CellJob(variant, seed, cfg.to_dict(), tmp_path / variant / str(seed), 24, SuiteOptions())
    jobs = [job("plain", 0), job("plain", 1), job("beta4", 0, **{"loss.beta": 4.0, "model.noise_scale": 0.3}),
            job("wd", 0, **{"optim.weight_decay": 0.0, "model.dropout": 0.0}), job("nobn", 0, **{"model.batchnorm": False}),
            job("wide", 0, **{"model.channels": 16}), job("ema", 0, **{"train.ema_decay": 0.9})]
    groups = [[j.variant for j in group] for group in fused_groups(jobs)]
    assert groups == [["plain", "plain", "beta4", "wd"], ["nobn"], ["wide"], ["ema"]]
    cfg = apply_overrides(Config(), TINY)
    assert fuse_key(cfg, 160, 10) != fuse_key(cfg, 144, 10) != fuse_key(cfg, 160, 100)


@pytest.mark.slow  # the regularization grid twice, 20 tiny cells each
def test_the_regularization_table_fused_is_the_table_one_after_another(tmp_path):
    common = ["--seeds", "1", "--device", "cpu", "train.threads=1", "data.name=shapes10", "data.train_subset=160",
              "model.channels=8", "model.latent_dim=8", "train.batch_size=16", "train.max_steps=6",
              "train.eval_images=32"]
    for fuse in ("auto", "off"):
        assert main(["ablate", "regularization", "--fuse", fuse, "--out", str(tmp_path / fuse), *common]) == 0
    fused_runs = [path for path in (tmp_path / "auto").glob("*/seed*/summary.json")
                  if "fused" in json.loads(path.read_text())]
    assert len(fused_runs) >= 10
    timing = ("wall_seconds", "images_per_second")
    tables = [[{k: v for k, v in row.items() if not k.startswith(timing)}
               for row in __import__("csv").DictReader((tmp_path / fuse / "table.csv").open())] for fuse in ("auto", "off")]
    assert tables[0] == tables[1]
