import json

import pytest
import torch

from vaegan.config import Config, apply_overrides
from vaegan.data import load_dataset
from vaegan.errors import VaeganError
from vaegan.runs import checkpoint as ckpt
from vaegan.runs.metrics import read_metrics
from vaegan.experiment import resume, train
from vaegan.runs import RunDir
from vaegan.training import Trainer

# Every source of randomness on: dropout, sampling noise, BatchNorm, flip + crop augmentation.
TINY = {"data.name": "shapes10", "model.channels": 8, "model.latent_dim": 8, "model.dropout": 0.3,
        "model.noise_scale": 0.3, "data.hflip": True, "data.crop_padding": 4, "train.batch_size": 16,
        "train.eval_images": 64, "train.device": "cpu", "optim.weight_decay": 1e-4, "loss.beta": 4.0}


def tiny_config(**overrides) -> Config:
    return apply_overrides(Config(), {**TINY, **overrides})


@pytest.fixture(scope="module")
def shapes():
    return load_dataset("shapes10", "train"), load_dataset("shapes10", "test")


def _params(model) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def _assert_identical(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_resume_is_bit_exact_across_an_epoch_boundary(tmp_path, shapes):
    train_set = shapes[0].head(48)  # 3 batches per epoch: 5 steps cross epochs
    n = 5
    straight = Trainer(tiny_config(**{"train.max_steps": 2 * n}), RunDir(tmp_path / "a"), train_set)
    straight.fit()

    first = Trainer(tiny_config(**{"train.max_steps": n}), RunDir(tmp_path / "b"), train_set)
    first.fit()
    payload = ckpt.read_checkpoint(tmp_path / "b" / "checkpoints" / "last.pt")
    assert (payload["step"], payload["epoch"], payload["batch"]) == (5, 1, 2)
    torch.manual_seed(1234)  # whatever happens in between must not matter
    second = Trainer(tiny_config(**{"train.max_steps": 2 * n}), RunDir(tmp_path / "b"), train_set)
    second.restore(payload)
    second.fit()
    _assert_identical(_params(straight.model), _params(second.model))
    _assert_identical(straight.optimizer.state_dict()["state"][0], second.optimizer.state_dict()["state"][0])


def test_train_then_resume_through_the_public_functions(tmp_path):
    cfg = tiny_config(**{"train.max_steps": 6, "train.ckpt_every": 4})
    reference = train(apply_overrides(cfg, {"train.max_steps": 12}), tmp_path / "ref")
    train(cfg, tmp_path / "run")
    resumed = resume(tmp_path / "run", {"train.max_steps": "12"})
    assert resumed["step"] == reference["step"] == 12
    _assert_identical(torch.load(tmp_path / "ref" / "model.pt", weights_only=True),
                      torch.load(tmp_path / "run" / "model.pt", weights_only=True))
    steps = [r["step"] for r in read_metrics(tmp_path / "run" / "metrics.jsonl") if r["kind"] == "train"]
    assert steps == list(range(1, 13))  # no step logged twice across the resume


def test_a_resume_after_a_crash_drops_metrics_logged_after_the_checkpoint(tmp_path):
    cfg = tiny_config(**{"train.max_steps": 4, "train.ckpt_every": 2})
    train(cfg, tmp_path / "run")
    with open(tmp_path / "run" / "metrics.jsonl", "a") as f:  # lines a killed process wrote after its checkpoint
        f.write(json.dumps({"kind": "train", "step": 5}) + "\n" + '{"kind": "tr')
    resume(tmp_path / "run", {"train.max_steps": 6})
    steps = [r["step"] for r in read_metrics(tmp_path / "run" / "metrics.jsonl") if r["kind"] == "train"]
    assert steps == [1, 2, 3, 4, 5, 6]


def test_resume_refuses_a_changed_experiment_and_names_the_keys(tmp_path):
    train(tiny_config(**{"train.max_steps": 2}), tmp_path / "run")
    with pytest.raises(VaeganError, match=r"model\.latent_dim, loss\.beta"):
        resume(tmp_path / "run", {"model.latent_dim": 4, "loss.beta": 1.0, "train.max_steps": 4})


def test_resume_of_a_finished_run_says_how_to_extend_it(tmp_path):
    train(tiny_config(**{"train.max_steps": 2}), tmp_path / "run")
    with pytest.raises(VaeganError, match="already finished"):
        resume(tmp_path / "run")


def test_a_new_run_never_replaces_an_existing_one(tmp_path):
    train(tiny_config(**{"train.max_steps": 2}), tmp_path / "run")
    before = (tmp_path / "run" / "model.pt").read_bytes()
    with pytest.raises(VaeganError, match="already holds a run"):
        train(tiny_config(**{"train.max_steps": 2}), tmp_path / "run")
    assert (tmp_path / "run" / "model.pt").read_bytes() == before


def test_missing_data_fails_before_touching_the_run_dir(tmp_path):
    run = tmp_path / "run"
    train(tiny_config(**{"train.max_steps": 2}), run)
    before = sorted(p.name for p in run.iterdir())
    cfg = apply_overrides(tiny_config(), {"data.name": "cifar10", "data.dir": str(tmp_path / "nodata"),
                                          "data.download": False})
    with pytest.raises(VaeganError):
        train(cfg, run, overwrite=True)
    assert sorted(p.name for p in run.iterdir()) == before


def test_run_directory_contents_and_logged_values(tmp_path):
    summary = train(tiny_config(**{"train.max_steps": 3, "train.recon_every": 1}), tmp_path / "run")
    run = tmp_path / "run"
    for name in ("config.yaml", "metrics.jsonl", "checkpoints/last.pt", "model.pt", "summary.json",
                 "recon/final.png", "samples/final.png"):
        assert (run / name).is_file(), name
    records = read_metrics(run / "metrics.jsonl")
    tests = [r for r in records if r["kind"] == "test"]
    assert [r["step"] for r in tests] == [0, 3]
    assert {"loss", "recon", "kl", "mse_per_pixel"} <= records[1].keys()
    assert summary["test"]["mse_per_pixel"] == tests[-1]["mse_per_pixel"]
    assert summary["images_per_second"] > 0


@pytest.mark.slow
def test_learning_on_shapes10_halves_the_test_mse_in_300_steps(tmp_path):
    cfg = apply_overrides(Config(), {"data.name": "shapes10", "model.channels": 32, "model.latent_dim": 32,
                                     "train.batch_size": 32, "train.max_steps": 300, "train.eval_images": 500,
                                     "train.device": "cpu", "train.ckpt_every": 1000})
    train(cfg, tmp_path / "run")
    tests = [r for r in read_metrics(tmp_path / "run" / "metrics.jsonl") if r["kind"] == "test"]
    assert tests[0]["step"] == 0 and tests[-1]["step"] == 300
    assert tests[-1]["mse_per_pixel"] < 0.5 * tests[0]["mse_per_pixel"]


def test_a_run_with_the_perceptual_loss_logs_it_and_resumes_bit_exactly(tmp_path, shapes, classifier_file):
    train_set = shapes[0].head(48)
    perceptual = {"loss.perceptual_weight": 0.5, "loss.perceptual_weights": classifier_file(tmp_path / "c.pt", 0)}
    straight = Trainer(tiny_config(**perceptual, **{"train.max_steps": 6}), RunDir(tmp_path / "a"), train_set)
    straight.fit()
    first = Trainer(tiny_config(**perceptual, **{"train.max_steps": 3}), RunDir(tmp_path / "b"), train_set)
    first.fit()
    payload = ckpt.read_checkpoint(tmp_path / "b" / "checkpoints" / "last.pt")
    second = Trainer(tiny_config(**perceptual, **{"train.max_steps": 6}), RunDir(tmp_path / "b"), train_set)
    second.restore(payload)
    second.fit()
    _assert_identical(_params(straight.model), _params(second.model))
    records = [r for r in read_metrics(tmp_path / "a" / "metrics.jsonl") if r.get("kind") == "train"]
    assert all(r["perceptual"] > 0 for r in records)
    plain = Trainer(tiny_config(**{"train.max_steps": 6}), RunDir(tmp_path / "c"), train_set)
    plain.fit()
    plain_state, perceptual_state = plain.model.state_dict(), straight.model.state_dict()
    assert any(not torch.equal(value, perceptual_state[key]) for key, value in plain_state.items())
    other = tiny_config(**{**perceptual, "train.max_steps": 6,
                           "loss.perceptual_weights": classifier_file(tmp_path / "d.pt", 1)})
    with pytest.raises(VaeganError, match="another perceptual network file"):
        Trainer(other, RunDir(tmp_path / "b"), train_set).restore(payload)
