import pytest

from vaegan import config as C
from vaegan.errors import VaeganError


def test_both_reference_presets_load_with_the_documented_values():
    plain = C.load_preset("vae-cifar10")
    reg = C.load_preset("vae-cifar10-regularized")
    assert (plain.model.batchnorm, plain.model.dropout, plain.optim.weight_decay, plain.loss.beta) == (False, 0, 0, 1)
    assert (plain.data.hflip, plain.data.crop_padding) == (False, 0)
    assert (reg.model.batchnorm, reg.model.dropout, reg.optim.weight_decay, reg.loss.beta) == (True, 0.3, 1e-4, 4)
    assert (reg.data.hflip, reg.data.crop_padding, reg.model.noise_scale) == (True, 4, 0.3)
    for cfg in (plain, reg):
        assert (cfg.model.latent_dim, cfg.train.batch_size, cfg.optim.lr) == (128, 128, 1e-3)


def test_every_preset_has_a_description():
    assert all(C.preset_description(name) for name in C.preset_names())


def test_overrides_are_parsed_to_the_field_type():
    cfg = C.apply_overrides(C.Config(), C.parse_override_args(
        ["data.name=shapes10", "train.max_steps=50", "model.batchnorm=false", "optim.lr=2e-4",
         "train.eval_images=none", "train.device=cuda:1"]))
    assert cfg.data.name == "shapes10" and cfg.train.max_steps == 50 and cfg.model.batchnorm is False
    assert cfg.optim.lr == 2e-4 and cfg.train.eval_images is None and cfg.train.device == "cuda:1"


def test_overrides_do_not_mutate_the_original():
    base = C.Config()
    C.apply_overrides(base, {"train.epochs": 3})
    assert base.train.epochs == C.TrainConfig().epochs


def test_unknown_key_names_the_key_and_suggests_the_nearest():
    with pytest.raises(VaeganError, match=r"unknown config key 'train\.epoch'.*did you mean 'train\.epochs'"):
        C.parse_override_args(["train.epoch=3"])


@pytest.mark.parametrize("arg, pattern", [
    ("train.epochs=three", r"'train\.epochs'.*not an integer"),
    ("train.epochs=0", r"'train\.epochs'.*>= 1"),
    ("model.dropout=1.0", r"'model\.dropout'.*< 1\.0"),
    ("data.name=mnist", r"'data\.name'.*allowed: cifar10, cifar100, shapes10"),
    ("model.batchnorm=maybe", r"'model\.batchnorm'.*boolean"),
    ("optim.lr=nan", r"'optim\.lr'.*finite"),
    ("optim.lr=0", r"'optim\.lr'.*> 0"),
    ("train.device=gpu", r"'train\.device'.*auto, cpu, cuda, cuda:N, mps"),
    ("train.batch_size=none", r"'train\.batch_size'.*cannot be none"),
])
def test_bad_values_name_the_key_and_what_is_allowed(arg, pattern):
    with pytest.raises(VaeganError, match=pattern):
        C.apply_overrides(C.Config(), C.parse_override_args([arg]))


@pytest.mark.parametrize("arg, pattern", [
    (f"train.seed={2**70}", r"'train\.seed'.*>= 0 and <= 9223372036854775807"),
    ("train.seed=-1", r"'train\.seed'.*>= 0 and <= 9223372036854775807"),
    ("model.latent_dim=1000000000", r"'model\.latent_dim'.*>= 1 and <= 65536"),
    ("model.embed_dim=65537", r"'model\.embed_dim'.*<= 65536"),
    ("model.channels=8193", r"'model\.channels'.*>= 2 and <= 8192"),
    ("model.d_channels=100000", r"'model\.d_channels'.*<= 8192"),
    ("data.crop_padding=65", r"'data\.crop_padding'.*>= 0 and <= 64"),
    ("train.batch_size=1000001", r"'train\.batch_size'.*<= 1000000"),
    *((f"train.{key}=1000000001", rf"'train\.{key}'.*<= 1000000000")
      for key in ("max_steps", "epochs", "ckpt_every", "recon_every", "eval_images", "vae_warmup_epochs")),
])
def test_absurd_sizes_and_seeds_name_the_key_and_the_allowed_range(arg, pattern):
    with pytest.raises(VaeganError, match=pattern):
        C.apply_overrides(C.Config(), C.parse_override_args([arg]))


def test_the_largest_allowed_values_are_accepted():
    cfg = C.apply_overrides(C.Config(), {"train.seed": 2**63 - 1, "model.latent_dim": 65536, "train.epochs": 10**9})
    assert (cfg.train.seed, cfg.model.latent_dim, cfg.train.epochs) == (2**63 - 1, 65536, 10**9)


def test_malformed_override():
    with pytest.raises(VaeganError, match="expected key=value"):
        C.parse_override_args(["train.epochs"])


def test_unknown_preset_suggests_the_nearest():
    with pytest.raises(VaeganError, match=r"unknown preset 'vae-cifar10-regularised'.*vae-cifar10-regularized"):
        C.load_preset("vae-cifar10-regularised")


def test_config_round_trips_through_yaml():
    cfg = C.apply_overrides(C.load_preset("vae-cifar10-regularized"), {"train.max_steps": 7})
    import yaml
    assert C.from_dict(yaml.safe_load(C.to_yaml(cfg))) == cfg


def test_frozen_differences_on_resume():
    old = C.Config()
    new = C.apply_overrides(old, {"model.latent_dim": 64, "train.max_steps": 9, "train.seed": 3})
    assert C.frozen_differences(old, new) == ["model.latent_dim", "train.seed"]


def _changed(base: C.Config, other: C.Config) -> set[tuple[str, str]]:
    """The (section, key) pairs where `other` differs from `base`."""
    return {(section, key) for section, values in other.to_dict().items() for key, value in values.items()
            if base.to_dict()[section][key] != value}


def test_cifar100_reference_presets_carry_the_reference_numbers():
    faithful = C.load_preset("cvaegan-cifar100")
    assert (faithful.model.name, faithful.model.arch, faithful.model.conditional) == ("vaegan", "conv", True)
    assert (faithful.loss.beta, faithful.loss.gan_weight, faithful.loss.gan_loss) == (0.2, 0.1, "ns")
    assert (faithful.loss.d_on_recon, faithful.loss.d_on_prior) == (True, True)
    assert (faithful.optim.lr, faithful.optim.d_lr) == (2e-4, 1e-4)
    assert (faithful.train.batch_size, faithful.train.epochs, faithful.data.name) == (128, 20, "cifar100")
    vae, gan = C.load_preset("vae-cifar100"), C.load_preset("gan-cifar100")
    assert (vae.model.name, vae.loss.gan_weight, gan.model.name) == ("vae", 0.0, "gan")
    resnet = C.load_preset("cvaegan-cifar100-resnet")
    assert (resnet.model.arch, resnet.train.vae_warmup_epochs, resnet.train.ema_decay) == ("resnet", 1, 0.999)
    assert resnet.loss.feature_weight > 0
    plus = C.load_preset("cvaegan-cifar100-plus")  # the faithful preset + the switches docs/quality.md chose
    assert _changed(faithful, plus) == {("model", "upsample"), ("model", "class_norm"), ("loss", "gan_loss"),
                                        ("optim", "d_lr"), ("model", "d_classifier"), ("loss", "class_weight"),
                                        ("model", "split_bn_stats")}
    assert (plus.model.upsample, plus.model.class_norm, plus.loss.gan_loss, plus.optim.d_lr) == ("resize", True,
                                                                                               "hinge", 4e-4)
    assert (plus.model.d_classifier, plus.loss.class_weight, plus.model.split_bn_stats) == (True, 0.1, True)
    for cfg in (vae, gan, resnet, plus, C.load_preset("cvaegan-cifar10")):  # same budget knobs as the faithful one
        assert (cfg.train.batch_size, cfg.train.epochs, cfg.optim.lr) == (128, 20, 2e-4)
        C.check_consistency(cfg)


def test_the_beta_vae_plus_preset_is_the_regularised_one_with_the_perceptual_loss_and_asks_for_its_file():
    regularized, plus = C.load_preset("vae-cifar10-regularized"), C.load_preset("vae-cifar10-plus")
    assert _changed(regularized, plus) == {("loss", "perceptual_weight")}
    assert plus.loss.perceptual_weight == 300  # docs/quality.md, "The beta-VAE"
    with pytest.raises(VaeganError, match=r"needs loss.perceptual_weights=FILE.*--dataset cifar10 train.epochs=2"):
        C.check_consistency(plus)
    C.check_consistency(C.apply_overrides(plus, {"loss.perceptual_weights": "runs/classifier-cifar10.pt"}))


@pytest.mark.parametrize("overrides, pattern", [
    ({"model.name": "vaegan", "loss.d_on_recon": False, "loss.d_on_prior": False}, "needs fakes"),
    ({"model.name": "gan", "loss.d_on_prior": False}, "d_on_prior must be true"),
    ({"model.name": "gan", "loss.gan_weight": 0}, "gan_weight must be > 0"),
    ({"model.name": "gan", "train.vae_warmup_epochs": 1}, "vae_warmup_epochs must be 0"),
    ({"model.name": "vae", "loss.feature_weight": 1.0}, "needs model.name=vaegan"),
    ({"model.name": "vaegan", "loss.feature_weight": 1.0, "loss.d_on_recon": False}, "d_on_recon=true"),
    ({"model.name": "gan", "loss.perceptual_weight": 1.0, "loss.perceptual_net": "vgg16"}, "has no encoder"),
    ({"loss.perceptual_weight": 1.0}, r"needs loss.perceptual_weights=FILE, .*`vaegan classifier train --dataset "
                                      r"cifar10 train.epochs=2` writes one"),
    ({"model.class_norm": True}, "model.class_norm .* needs model.conditional=true"),
    ({"model.prior": "class"}, "model.prior=class .* needs model.conditional=true"),
    ({"model.conditional": True, "model.class_norm": True, "model.batchnorm": False}, "needs model.batchnorm=true"),
    ({"loss.d_augment": "translation"}, "model.name=vae has none"),
    ({"model.d_classifier": True, "loss.class_weight": 0.1}, "d_classifier .* needs model.conditional=true and "
                                                             "model.name=vaegan or gan"),
    ({"model.name": "vaegan", "model.conditional": True, "model.d_classifier": True}, "set both, or neither"),
    ({"model.name": "vaegan", "model.conditional": True, "loss.class_weight": 0.1}, "set both, or neither"),
    ({"model.name": "vaegan", "model.conditional": True, "model.d_classifier": True, "loss.class_weight": 0.1,
      "loss.d_on_prior": False}, "needs loss.d_on_prior=true"),
    ({"model.name": "vaegan", "loss.d_augment": "translation", "loss.feature_weight": 1.0},
     "set loss.feature_weight=0 or loss.d_augment=off"),
    *(({**where, "model.split_bn_stats": True}, "split_bn_stats .* needs both passes and BatchNorm") for where in (
        {"model.name": "vae"}, {"model.name": "gan"}, {"model.name": "vaegan", "loss.d_on_prior": False},
        {"model.name": "vaegan", "model.batchnorm": False})),
    ({"model.name": "vaegan", "model.sample_bn_stats": "all"},
     "sample_bn_stats=all .* needs model.split_bn_stats=true"),
])
def test_inconsistent_combinations_are_refused_with_the_keys_named(overrides, pattern):
    with pytest.raises(VaeganError, match=pattern):
        C.check_consistency(C.apply_overrides(C.Config(), overrides))


@pytest.mark.parametrize("key,value,allowed", [("model.upsample", "bilinear", "convtranspose, resize"),
                                               ("model.prior", "vamp", "standard, class"),
                                               ("model.sample_bn_stats", "both", "prior, all"),
                                               ("loss.d_augment", "cutout", "off, translation, color,translation")])
def test_the_quality_options_name_their_allowed_values(key, value, allowed):
    with pytest.raises(VaeganError, match=f"invalid value for '{key}'.*allowed: {allowed}"):
        C.apply_overrides(C.Config(), {key: value})


@pytest.mark.parametrize("text, expected", [
    ("[wandb,mlflow]", ["wandb", "mlflow"]), ("wandb", ["wandb"]), ("[]", []), ("", []),
    ("[ mlflow , mlflow ]", ["mlflow"]),
])
def test_a_list_key_takes_a_bracketed_list_and_keeps_each_item_once(text, expected):
    cfg = C.apply_overrides(C.Config(), C.parse_override_args([f"train.log_to={text}"]))
    assert cfg.train.log_to == expected


def test_a_list_key_refuses_an_unknown_item_or_a_non_list_naming_the_key_and_the_choices():
    with pytest.raises(VaeganError, match=r"'train.log_to': 'comet'; allowed: a list of tensorboard, wandb, mlflow"):
        C.apply_overrides(C.Config(), {"train.log_to": "[wandb,comet]"})
    with pytest.raises(VaeganError, match=r"'train.log_to': \['wandb'\]"):  # a YAML list inside the list
        C.from_dict({"train": {"log_to": [["wandb"]]}})
    with pytest.raises(VaeganError, match=r"'train.log_to': 3 is not a list"):
        C.from_dict({"train": {"log_to": 3}})


def test_a_list_key_reads_yaml_lists_round_trips_and_may_change_on_resume():
    import yaml

    cfg = C.from_dict(yaml.safe_load("train:\n  log_to: [mlflow, wandb, mlflow]\n"), where="a preset")
    assert cfg.train.log_to == ["mlflow", "wandb"]
    assert C.from_dict(yaml.safe_load(C.to_yaml(cfg))) == cfg
    assert C.frozen_differences(cfg, C.apply_overrides(cfg, {"train.log_to": "[tensorboard]"})) == []
