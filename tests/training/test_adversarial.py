"""The VAE-GAN / GAN training step and trainer: loss terms, warm-up, EMA, non-finite steps, exact resume."""

import pytest
import torch

from vaegan.config import Config, LossConfig, ModelConfig, apply_overrides
from vaegan.data import load_dataset
from vaegan.errors import VaeganError
from vaegan.models import build_model
from vaegan.runs import checkpoint as ckpt
from vaegan.runs.metrics import read_metrics
from vaegan.experiment import resume, train
from vaegan.runs import RunDir
from vaegan.training import Trainer, TrainStep, build_adam

TINY_GAN = {"data.name": "shapes10", "model.name": "vaegan", "model.conditional": True, "model.channels": 8,
            "model.d_channels": 8, "model.latent_dim": 8, "model.embed_dim": 4, "model.dropout": 0.3,
            "loss.beta": 0.2, "loss.reduction": "mean", "loss.gan_weight": 0.1, "loss.feature_weight": 0.5,
            "train.batch_size": 16, "train.eval_images": 32, "train.device": "cpu", "train.ema_decay": 0.99,
            "data.hflip": True, "data.crop_padding": 4}


def gan_config(**overrides) -> Config:
    return apply_overrides(Config(), {**TINY_GAN, **overrides})


@pytest.fixture(scope="module")
def shapes():
    return load_dataset("shapes10", "train").head(48), load_dataset("shapes10", "test")


def build_step(loss: LossConfig, name: str = "vaegan"):
    torch.manual_seed(0)
    model = build_model(ModelConfig(name=name, conditional=True, channels=8, d_channels=8, latent_dim=8,
                                    embed_dim=4), num_classes=10)
    g = build_adam(model.autoencoder_parameters(), 1e-3, 0.0, (0.5, 0.999))
    d = build_adam(model.discriminator.parameters(), 1e-3, 0.0, (0.5, 0.999))
    return model, TrainStep(model, g, loss, d_optimizer=d)


def batch(n: int = 8):
    g = torch.Generator().manual_seed(1)
    return torch.rand(n, 3, 32, 32, generator=g) * 2 - 1, torch.randint(0, 10, (n,), generator=g)


@pytest.mark.parametrize("gan_loss", ["ns", "hinge"])
def test_the_loss_is_recon_plus_beta_kl_plus_lambda_gan_plus_feature_term(gan_loss):
    loss = LossConfig(beta=0.2, reduction="mean", gan_weight=0.1, feature_weight=0.5, gan_loss=gan_loss)
    _, step = build_step(loss)
    v = step(*batch()).values
    assert {"recon", "kl", "gan", "feature", "d_loss", "d_real", "d_fake"} <= v.keys()
    expected = v["recon"] + 0.2 * v["kl"] + 0.1 * v["gan"] + 0.5 * v["feature"]
    assert torch.allclose(v["loss"], expected)
    assert v["feature"] > 0


def build_classifying_step(class_weight: float):
    torch.manual_seed(0)
    model = build_model(ModelConfig(name="vaegan", conditional=True, channels=8, d_channels=8, latent_dim=8,
                                    embed_dim=4, d_classifier=True), num_classes=10)
    g = build_adam(model.autoencoder_parameters(), 1e-3, 0.0, (0.5, 0.999))
    d = build_adam(model.discriminator.parameters(), 1e-3, 0.0, (0.5, 0.999))
    loss = LossConfig(beta=0.2, reduction="mean", gan_weight=0.1, class_weight=class_weight)
    return model, TrainStep(model, g, loss, d_optimizer=d)


def test_d_classifies_real_images_and_g_is_trained_to_make_its_prior_samples_show_their_label(monkeypatch):
    """AC-GAN: D's loss adds its class head's cross-entropy on the real images (weight 1), E/G's adds
    class_weight x that head's cross-entropy on the prior samples G(z, y) against y; the reconstructions and
    D's GAN logits are not classified."""
    model, step = build_classifying_step(0.3)
    heads = []
    original = model.discriminator.class_logits
    monkeypatch.setattr(model.discriminator, "class_logits", lambda a: heads.append(original(a)) or heads[-1])
    x, y = batch()
    v = step(x, y).values
    assert torch.allclose(v["loss"], v["recon"] + 0.2 * v["kl"] + 0.1 * v["gan"] + 0.3 * v["class"])
    assert v["class"] > 0 and v["d_class"] > 0
    # G's pass classifies the prior samples only (not the reconstructions), D's the real images only
    assert [logits.shape for logits in heads] == [(len(x), 10), (len(x), 10)]
    torch.testing.assert_close(v["d_class"], torch.nn.functional.cross_entropy(heads[1].detach(), y))


def test_the_class_term_reaches_g_through_the_labels_of_its_prior_samples():
    """Only G's prior samples carry the class term: with its weight on, G's gradient changes with the labels
    the prior samples are drawn for, and the encoder's does not move for it."""
    def gradients(class_weight: float, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        model, step = build_classifying_step(class_weight)
        torch.manual_seed(5)
        x, _ = batch()
        step.optimizer.step = lambda: None  # keep the gradients of one step, do not apply them
        step.d_optimizer.step = lambda: None
        step.skips_on_device = dict.fromkeys(step.skips_on_device, False)
        step(x, y)
        g = torch.cat([p.grad.flatten() for p in model.decoder.parameters() if p.grad is not None])
        e = torch.cat([p.grad.flatten() for p in model.encoder.parameters() if p.grad is not None])
        return g, e

    labels = batch()[1]
    g_off, e_off = gradients(0.0, labels)
    g_on, e_on = gradients(1.0, labels)
    assert not torch.allclose(g_on, g_off)
    assert torch.allclose(e_on, e_off)


def test_gan_only_has_no_reconstruction_terms_and_trains_g_and_d():
    model, step = build_step(LossConfig(gan_weight=1.0), name="gan")
    before_g = [p.clone() for p in model.decoder.parameters()]
    before_d = [p.clone() for p in model.discriminator.parameters()]
    v = step(*batch()).values
    assert "recon" not in v and torch.allclose(v["loss"], v["gan"])
    assert any(not torch.equal(a, b) for a, b in zip(before_g, model.decoder.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(before_d, model.discriminator.parameters()))


def test_switching_off_both_fake_sources_of_a_vaegan_is_refused(shapes):
    with pytest.raises(VaeganError, match="d_on_recon"):
        Trainer(gan_config(**{"loss.d_on_recon": False, "loss.d_on_prior": False}), RunDir("unused"), shapes[0])


def test_a_non_finite_batch_skips_the_whole_step():
    model, step = build_step(LossConfig(beta=0.2, reduction="mean"))
    step(*batch())
    before = {k: v.clone() for k, v in model.state_dict().items()}  # weights, BN statistics, SN vectors
    adam_state = [s["exp_avg"].clone() for s in step.optimizer.state.values()]
    x, y = batch()
    x[0, 0, 0, 0] = float("nan")
    out = step(x, y)
    assert out.skipped
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(torch.equal(a, s["exp_avg"]) for a, s in zip(adam_state, step.optimizer.state.values()))
    assert not step(*batch()).skipped


def _poison(trainer: Trainer, bad_steps: set[int]) -> None:
    """Make the batches of the given (1-based) steps contain a NaN, as a corrupt image or an overflow would."""
    original = trainer.loader.epoch_batches

    def batches(epoch, start=0):
        for x, y in original(epoch, start):
            if trainer.position.step + 1 in bad_steps:
                x = x.clone()
                x[0, 0, 0, 0] = float("nan")
            yield x, y
    trainer.loader.epoch_batches = batches


def test_skipped_steps_are_counted_and_training_goes_on(tmp_path, shapes):
    trainer = Trainer(gan_config(**{"train.max_steps": 6}), RunDir(tmp_path / "run"), shapes[0])
    _poison(trainer, {2, 4})
    trainer.fit()
    records = [r for r in read_metrics(tmp_path / "run" / "metrics.jsonl") if r["kind"] == "train"]
    assert [r["skipped"] for r in records] == [False, True, False, True, False, False]
    assert records[-1]["nonfinite_steps"] == trainer.nonfinite_steps == 2


def test_k_non_finite_steps_in_a_row_stop_the_run_and_keep_the_last_good_checkpoint(tmp_path, shapes):
    cfg = gan_config(**{"train.max_steps": 20, "train.ckpt_every": 2, "train.max_nonfinite": 3})
    trainer = Trainer(cfg, RunDir(tmp_path / "run"), shapes[0])
    _poison(trainer, set(range(5, 21)))
    checkpoint = tmp_path / "run" / "checkpoints" / "last.pt"
    with pytest.raises(VaeganError, match=r"3 non-finite losses or gradients in a row \(steps 5-7\)"):
        trainer.fit()
    payload = ckpt.read_checkpoint(checkpoint)
    assert payload["step"] == 4 and payload["nonfinite_steps"] == 0
    assert all(torch.isfinite(v).all() for v in payload["model"].values() if v.is_floating_point())


def test_warm_up_has_no_gan_term_and_no_discriminator_update(tmp_path, shapes):
    cfg = gan_config(**{"train.max_steps": 6, "train.vae_warmup_epochs": 1})  # 3 steps per epoch
    trainer = Trainer(cfg, RunDir(tmp_path / "run"), shapes[0])
    d_start = {k: v.clone() for k, v in trainer.model.discriminator.state_dict().items()}
    cfg_warm = apply_overrides(cfg, {"train.max_steps": 3})
    warm = Trainer(cfg_warm, RunDir(tmp_path / "warm"), shapes[0])
    warm.fit()
    assert all(torch.equal(d_start[k], v) for k, v in warm.model.discriminator.state_dict().items())
    assert len(warm.d_optimizer.state) == 0
    trainer.fit()
    records = [r for r in read_metrics(tmp_path / "run" / "metrics.jsonl") if r["kind"] == "train"]
    assert [("gan" in r, "d_loss" in r) for r in records] == [(False, False)] * 3 + [(True, True)] * 3
    assert all(torch.allclose(torch.tensor(r["loss"]), torch.tensor(r["recon"] + 0.2 * r["kl"]))
               for r in records[:3])
    assert any(not torch.equal(d_start[k], v) for k, v in trainer.model.discriminator.state_dict().items())


def test_vaegan_resume_is_bit_exact_with_d_ema_and_both_optimisers(tmp_path, shapes):
    n = 4
    straight = Trainer(gan_config(**{"train.max_steps": 2 * n, "train.vae_warmup_epochs": 1}), RunDir(tmp_path / "a"),
                       shapes[0])
    straight.fit()
    first = Trainer(gan_config(**{"train.max_steps": n, "train.vae_warmup_epochs": 1}), RunDir(tmp_path / "b"),
                    shapes[0])
    first.fit()
    payload = ckpt.read_checkpoint(tmp_path / "b" / "checkpoints" / "last.pt")
    torch.manual_seed(99)
    second = Trainer(gan_config(**{"train.max_steps": 2 * n, "train.vae_warmup_epochs": 1}), RunDir(tmp_path / "b"),
                     shapes[0])
    second.restore(payload)
    second.fit()
    for a, b in [(straight.model.state_dict(), second.model.state_dict()),
                 (straight.ema.shadow.state_dict(), second.ema.shadow.state_dict()),
                 (straight.d_optimizer.state_dict()["state"][0], second.d_optimizer.state_dict()["state"][0]),
                 (straight.optimizer.state_dict()["state"][0], second.optimizer.state_dict()["state"][0])]:
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_gan_run_writes_sample_grids_and_no_reconstructions(tmp_path, shapes):
    cfg = gan_config(**{"model.name": "gan", "loss.gan_weight": 1.0, "loss.feature_weight": 0.0,
                        "train.max_steps": 3})
    summary = train(cfg, tmp_path / "run")
    assert (tmp_path / "run" / "samples" / "final.png").is_file()
    assert not (tmp_path / "run" / "recon").exists()
    assert summary["test"] == {}
    resumed = resume(tmp_path / "run", {"train.max_steps": 4})
    assert resumed["step"] == 4


def test_a_checkpoint_that_does_not_fit_the_model_is_refused_in_one_message(tmp_path, shapes):
    train(gan_config(**{"train.max_steps": 2}), tmp_path / "run")
    path = tmp_path / "run" / "checkpoints" / "last.pt"
    payload = ckpt.read_checkpoint(path)
    del payload["model"]["decoder.project.weight"]
    ckpt.write_checkpoint(path, payload)
    with pytest.raises(VaeganError, match="does not fit the model"):
        resume(tmp_path / "run", {"train.max_steps": 3})
    payload["d_optimizer"] = None
    ckpt.write_checkpoint(path, payload)
    with pytest.raises(VaeganError, match="no d_optimizer state"):
        resume(tmp_path / "run", {"train.max_steps": 3})
