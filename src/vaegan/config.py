"""Typed run configuration: dataclasses, YAML presets and dotted `key=value` overrides.

Every value passes through one validator, whether it comes from a preset, the command line or a checkpoint,
so a bad value is reported the same way wherever it was written: naming the key and what it accepts.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import numbers
import operator
import re
import types
import typing
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import yaml

from vaegan.errors import VaeganError


def _choices(*values: str) -> dict:
    return {"choices": values}


def _at_least(low: float) -> dict:
    return {"min": low}


def _between(low: int, high: int) -> dict:
    return {"min": low, "max": high}


# Upper bounds of sizes, far beyond any real run, so that a slip (latent_dim=1000000000) is refused here instead of
# dying later in an allocation: 65536 latent dims or 8192 channels make layers of hundreds of megabytes or more, a
# padding of 64 is twice a CIFAR image, a batch of a million CIFAR images is 3 GB, a billion steps is years.
_WIDTH = _between(1, 65536)
_CHANNELS = _between(2, 8192)
_COUNT = _between(1, 10**9)


def _fraction() -> dict:
    """A probability-like value in [0, 1)."""
    return {"min": 0.0, "below": 1.0}


DEVICE_RULE = {"pattern": r"auto|cpu|mps|cuda(:\d+)?", "allowed": "auto, cpu, cuda, cuda:N, mps"}


D_AUGMENT_POLICIES = ("off", "translation", "color,translation", "color,translation,cutout")

DATASET_NAMES = ("cifar10", "cifar100", "shapes10", "folder", "npz")

TRACKERS = ("tensorboard", "wandb", "mlflow")  # train.log_to (vaegan.tracking)


@dataclass
class DataConfig:
    # folder: your images, one subfolder per class (or none: unconditional); npz: arrays x, y, ... in a file
    name: str = field(default="cifar10", metadata=_choices(*DATASET_NAMES))
    dir: str | None = None  # CIFAR: the folder holding (or receiving) it; folder / npz: the folder or file to read
    download: bool = True
    hflip: bool = False
    crop_padding: int = field(default=0, metadata=_between(0, 64))
    # train on this many training images only: class-balanced, drawn from train.seed (small-data regimes)
    train_subset: int | None = field(default=None, metadata=_COUNT)
    # folder / npz without a test split: this share of each class is held out as the test split (fixed draw)
    test_fraction: float = field(default=0.1, metadata={"above": 0.0, "below": 1.0})


@dataclass
class ModelConfig:
    # vae: encoder + generator; vaegan: + discriminator; gan: generator + discriminator, no encoder
    name: str = field(default="vae", metadata=_choices("vae", "vaegan", "gan"))
    arch: str = field(default="conv", metadata=_choices("conv", "resnet"))
    conditional: bool = False  # label embeddings in E, G and a projection D; classes come from the dataset
    embed_dim: int = field(default=32, metadata=_WIDTH)  # label embedding size in E and G
    latent_dim: int = field(default=128, metadata=_WIDTH)
    channels: int = field(default=128, metadata=_CHANNELS)
    d_channels: int = field(default=64, metadata=_CHANNELS)  # discriminator width
    batchnorm: bool = True
    dropout: float = field(default=0.0, metadata=_fraction())
    noise_scale: float = field(default=1.0, metadata=_at_least(0.0))
    # How the conv decoder doubles its resolution: convtranspose (the reference's 4x4 stride-2 ConvTranspose) or
    # resize (nearest-neighbour upsampling + 3x3 conv, no checkerboard overlap; the resnet decoder always resizes)
    upsample: str = field(default="convtranspose", metadata=_choices("convtranspose", "resize"))
    # Conditional models: G's BatchNorm layers also take per-class gains and biases, linear in G's label embedding
    # (conditional BatchNorm, as BigGAN); the label then modulates every layer of G, not only its first
    class_norm: bool = False
    # standard: p(z) = N(0, I); class: p(z | y) = N(m_y, I) with a learned mean per class (conditional models),
    # so the KL term pulls each class's codes to their own region and prior samples start there
    prior: str = field(default="standard", metadata=_choices("standard", "class"))
    # Conditional models with a discriminator: D also classifies images, with a linear head on its pooled
    # features (AC-GAN, Odena et al. 2017); loss.class_weight sets how much G is trained to make that head find
    # the label in its prior samples
    d_classifier: bool = False
    # VAE-GANs with BatchNorm: G keeps two sets of BatchNorm running statistics, one moved by the reconstruction
    # pass (what eval-mode reconstructions, interpolations and decoded codes use) and one by the prior samples
    # (what samples use). Off (the reference, PyTorch's BatchNorm): one set averaging both, so in eval mode each
    # kind is normalised partly with the other's statistics (models/reconstruction_statistics.py). Training
    # itself is the same either way: in training mode every pass normalises with its own batch's statistics
    split_bn_stats: bool = False
    # With split_bn_stats: the statistics samples read. prior: those of the prior samples' passes alone; all:
    # those of every pass, as without the split (the reconstruction pass moves both sets), so only
    # reconstructions change. Which is better depends on the recipe (docs/quality.md)
    sample_bn_stats: str = field(default="prior", metadata=_choices("prior", "all"))


@dataclass
class LossConfig:
    beta: float = field(default=1.0, metadata=_at_least(0.0))
    # sum: per-image sums over pixels and latent dims (the ELBO); mean: per-element means (MSE per pixel, KL per
    # latent dim), the reading of the CIFAR-100 reference under which lambda 0.1 balances the terms
    reduction: str = field(default="sum", metadata=_choices("sum", "mean"))
    gan_weight: float = field(default=0.1, metadata=_at_least(0.0))  # lambda
    gan_loss: str = field(default="ns", metadata=_choices("ns", "hinge"))
    d_on_recon: bool = True  # D sees reconstructions G(E(x), y) as fakes
    d_on_prior: bool = True  # D sees prior samples G(z, y) as fakes
    feature_weight: float = field(default=0.0, metadata=_at_least(0.0))  # feature matching in D's features
    # Perceptual reconstruction loss: distance between a frozen network's features of x and x_hat (objectives/
    # perceptual.py). net: classifier = a `vaegan classifier train` file (offline), vgg16 = torchvision's VGG16
    # (vgg16-397923af.pth: from perceptual_weights, $VAEGAN_VGG or a checked download into the cache).
    perceptual_weight: float = field(default=0.0, metadata=_at_least(0.0))
    perceptual_net: str = field(default="classifier", metadata=_choices("classifier", "vgg16"))
    perceptual_weights: str | None = None
    # DiffAugment (Zhao et al. 2020): the same differentiable augmentations on every image D sees, real and fake,
    # in D's and in G's pass; the reconstruction losses see the images as they are
    d_augment: str = field(default="off", metadata=_choices(*D_AUGMENT_POLICIES))
    # With model.d_classifier: D minimises the cross-entropy of its class head on real images (weight 1, as in
    # AC-GAN) and E/G add class_weight x that head's cross-entropy on the prior samples G(z, y) against y
    class_weight: float = field(default=0.0, metadata=_at_least(0.0))


@dataclass
class OptimConfig:
    lr: float = field(default=1e-3, metadata={"above": 0.0})  # encoder + generator
    d_lr: float = field(default=1e-4, metadata={"above": 0.0})  # discriminator
    weight_decay: float = field(default=0.0, metadata=_at_least(0.0))
    beta1: float = field(default=0.9, metadata=_fraction())
    beta2: float = field(default=0.999, metadata=_fraction())


@dataclass
class TrainConfig:
    epochs: int = field(default=10, metadata=_COUNT)
    max_steps: int | None = field(default=None, metadata=_COUNT)
    batch_size: int = field(default=128, metadata=_between(1, 1_000_000))
    seed: int = field(default=0, metadata=_between(0, 2**63 - 1))  # what torch and numpy generators take
    ckpt_every: int = field(default=500, metadata=_COUNT)
    # An epoch's end brings test metrics, grids (every recon_every of those ends) and a checkpoint, at the first
    # epoch end on or after each multiple of epoch_work_steps steps: every epoch when epochs are that long or
    # longer, every few epochs when they are short (256 images are 2 steps of 128), so the cost stays bounded.
    epoch_work_steps: int = field(default=100, metadata=_COUNT)
    recon_every: int = field(default=1, metadata=_COUNT)
    eval_images: int | None = field(default=None, metadata=_COUNT)
    vae_warmup_epochs: int = field(default=0, metadata=_between(0, 10**9))  # VAE-only epochs before the GAN terms
    ema_decay: float = field(default=0.0, metadata=_fraction())  # EMA of the generator; 0 = off
    max_nonfinite: int = field(default=10, metadata=_at_least(1))  # this many non-finite steps in a row stop
    # Experiment trackers the run also logs to (config, train records, test metrics, grids, summary), any of
    # tensorboard, wandb, mlflow (extras vaegan[tensorboard], [wandb], [mlflow]): train.log_to=[wandb,mlflow]. A
    # resume may change the list; the trackers it keeps continue their runs (vaegan.tracking)
    log_to: list[str] = field(default_factory=list, metadata={"items": TRACKERS})
    tensorboard: bool = False  # the same as tensorboard in log_to (kept for older configs)
    device: str = field(default="auto", metadata=DEVICE_RULE)
    # How the step runs (docs/performance.md). speed: auto = the device's measured-fastest settings, eager = plain
    # PyTorch. The keys below override single settings; none = the device's default. A resumed run keeps the
    # settings it recorded unless one of these keys is changed.
    speed: str = field(default="auto", metadata=_choices("auto", "eager"))
    precision: str | None = field(default=None, metadata=_choices("fp32", "bf16"))  # bf16: autocast, fp32 weights
    compile: str | None = field(default=None, metadata=_choices("off", "default", "reduce-overhead"))
    tf32: bool | None = None  # TF32 matmuls and convolutions on CUDA
    # The whole step captured once into a CUDA graph and replayed (training/graph.py): on, off, or auto (on where
    # benchmarks/gpu_check.py measured it faster; no device yet).
    graph: str = field(default="auto", metadata=_choices("auto", "on", "off"))
    threads: int | None = field(default=None, metadata=_between(1, 4096))  # CPU intra-op threads
    # Logged values stay on the device and are written every log_every steps (every step still gets its
    # record); none = 1 on CPU, 50 on CUDA and MPS, where each transfer waits for the device.
    log_every: int | None = field(default=None, metadata=_COUNT)


@dataclass
class EvaluationConfig:
    inception_weights: str | None = None  # pt_inception-2015-12-05-6726825d.pth; else $VAEGAN_INCEPTION or cache
    # FCD and class consistency of quality_samples samples at each epoch end, scored by this `vaegan classifier
    # train` file (one the run does not train against): `quality` records for `vaegan curves` and the report
    quality_classifier: str | None = None
    quality_samples: int = field(default=2000, metadata=_between(2, 100_000))


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return dataclasses.asdict(self)

    def get(self, key: str) -> Any:
        section, name = key.split(".", 1)
        return getattr(getattr(self, section), name)


# Keys that define what is trained and on which data order; changing them on resume would silently train a
# different experiment, so resume refuses them. Everything else in `train` is a schedule knob, and where the
# data lives (data.dir, data.download) is not part of the experiment.
RESUME_FROZEN_SECTIONS = ("data", "model", "loss", "optim")
RESUME_FROZEN_KEYS = ("train.seed", "train.batch_size", "train.vae_warmup_epochs", "train.ema_decay")
RESUME_FREE_KEYS = ("data.dir", "data.download", "loss.perceptual_weights")  # the trainer checks the file's sha256


def _sections(root: type = Config) -> dict[str, type]:
    hints = typing.get_type_hints(root)
    return {f.name: hints[f.name] for f in dataclasses.fields(root)}


def all_keys(root: type = Config) -> list[str]:
    return [f"{section}.{f.name}" for section, cls in _sections(root).items() for f in dataclasses.fields(cls)]


def _field_of(key: str, root: type = Config) -> tuple[dataclasses.Field, Any]:
    """The dataclass field behind a dotted key of a config class `root` and its resolved type annotation."""
    section, _, name = key.partition(".")
    cls = _sections(root).get(section)
    fields = {f.name: f for f in dataclasses.fields(cls)} if cls else {}
    if name not in fields:
        raise VaeganError(_unknown_key_message(key, root))
    return fields[name], typing.get_type_hints(cls)[name]


def _unknown_key_message(key: str, root: type) -> str:
    keys = all_keys(root)
    near = difflib.get_close_matches(key, keys, n=1, cutoff=0.6)
    hint = f"did you mean '{near[0]}'? " if near else ""
    return f"unknown config key '{key}': {hint}known keys: {', '.join(keys)}"


def _base_type(hint: Any) -> tuple[type, bool]:
    """The field's scalar type and whether None is allowed."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return args[0], True
    return hint, False


_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}
_NONE = {"none", "null", "~"}


def _convert(key: str, value: Any, kind: type, optional: bool) -> Any:
    if value is None or (isinstance(value, str) and value.strip().lower() in _NONE):
        if optional:
            return None
        raise VaeganError(f"invalid value for '{key}': it cannot be none")
    if not isinstance(value, (str, numbers.Real)):  # a YAML list, mapping or date
        raise VaeganError(f"invalid value for '{key}': {value!r} is a {type(value).__name__}, not a single value")
    if kind is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE | _FALSE:
            return text in _TRUE
        raise VaeganError(f"invalid value for '{key}': {value!r} is not a boolean (use true or false)")
    if kind is int:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise VaeganError(f"invalid value for '{key}': {value!r} is not an integer")
        try:
            return int(value) if not isinstance(value, str) else int(value.strip().replace("_", ""))
        except ValueError:
            raise VaeganError(f"invalid value for '{key}': {value!r} is not an integer") from None
    if kind is float:
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise VaeganError(f"invalid value for '{key}': {value!r} is not a number") from None
        if isinstance(value, bool) or not math.isfinite(number):
            raise VaeganError(f"invalid value for '{key}': {value!r} is not a finite number")
        return number
    return str(value)


def _convert_list(key: str, value: Any, allowed: tuple[str, ...]) -> list[str]:
    """A list of choices, each kept once: a YAML list, or `[a,b]` (or `a,b`; `[]` for none) on the command line."""
    if isinstance(value, str):
        text = value.strip()
        text = text[1:-1] if text.startswith("[") and text.endswith("]") else text
        items = [item.strip() for item in text.split(",") if item.strip()]
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        raise VaeganError(f"invalid value for '{key}': {value!r} is not a list (write [{allowed[0]},{allowed[1]}])")
    for item in items:
        if item not in allowed:
            raise VaeganError(f"invalid value for '{key}': {item!r}; allowed: a list of {', '.join(allowed)}, e.g. "
                              f"[{allowed[0]},{allowed[1]}]")
    return list(dict.fromkeys(items))


# The range rules of field metadata: the test a value must pass and how messages write it.
_BOUNDS = {"min": (operator.ge, ">="), "above": (operator.gt, ">"), "below": (operator.lt, "<"),
           "max": (operator.le, "<=")}


def validate(key: str, value: Any, root: type = Config) -> Any:
    """Convert `value` (a CLI string, or a YAML value: a list for list fields) to the field's type and check its
    allowed range or choices."""
    f, hint = _field_of(key, root)
    if typing.get_origin(hint) is list:
        return _convert_list(key, value, f.metadata["items"])
    kind, optional = _base_type(hint)
    converted = _convert(key, value, kind, optional)
    if converted is None:
        return None
    rules = f.metadata
    if "choices" in rules and converted not in rules["choices"]:
        raise VaeganError(f"invalid value for '{key}': {converted!r}; allowed: {', '.join(rules['choices'])}")
    if "pattern" in rules and not re.fullmatch(rules["pattern"], converted):
        raise VaeganError(f"invalid value for '{key}': {converted!r}; allowed: {rules['allowed']}")
    bounds = {rule: limit for rule, limit in rules.items() if rule in _BOUNDS}
    if not all(_BOUNDS[rule][0](converted, limit) for rule, limit in bounds.items()):
        allowed = " and ".join(f"{_BOUNDS[rule][1]} {limit}" for rule, limit in bounds.items())
        raise VaeganError(f"invalid value for '{key}': {converted!r}; it must be {allowed}")
    return converted


def apply_overrides(cfg, overrides: dict[str, Any]):
    """A copy of `cfg` (a Config, or another config class made of sections) with dotted-key overrides applied
    and validated."""
    root = type(cfg)
    new = root(**{section: dataclasses.replace(getattr(cfg, section)) for section in _sections(root)})
    for key, value in overrides.items():
        section, _, name = key.partition(".")
        setattr(getattr(new, section), name, validate(key, value, root))
    return new


def parse_override_args(args: list[str], root: type = Config) -> dict[str, str]:
    """`['a.b=1', ...]` -> `{'a.b': '1'}`; keys are checked here so a typo fails before any work starts."""
    overrides: dict[str, str] = {}
    for arg in args:
        key, sep, value = arg.partition("=")
        if not sep or not key:
            raise VaeganError(f"invalid override '{arg}': expected key=value, e.g. train.max_steps=100")
        _field_of(key.strip(), root)
        overrides[key.strip()] = value
    return overrides


def flatten(nested: dict[str, Any], where: str) -> dict[str, Any]:
    """`{'train': {'epochs': 3}}` -> `{'train.epochs': 3}`, refusing anything that is not section/key."""
    if not isinstance(nested, dict):
        raise VaeganError(f"{where}: expected a mapping of config sections, got {type(nested).__name__}")
    flat: dict[str, Any] = {}
    for section, values in nested.items():
        if not isinstance(values, dict):
            raise VaeganError(f"{where}: section '{section}' must be a mapping of keys to values")
        for name, value in values.items():
            flat[f"{section}.{name}"] = value
    return flat


def from_dict(nested: dict[str, Any], where: str = "config") -> Config:
    return apply_overrides(Config(), flatten(nested, where))


# ---- presets -------------------------------------------------------------------------------------------

def _preset_files() -> dict[str, Any]:
    folder = resources.files("vaegan") / "presets"
    return {p.name[:-5]: p for p in folder.iterdir() if p.name.endswith(".yaml")}


def preset_names() -> list[str]:
    return sorted(_preset_files())


def _read_preset(name: str) -> dict[str, Any]:
    files = _preset_files()
    if name not in files:
        near = difflib.get_close_matches(name, files, n=1)
        hint = f"did you mean '{near[0]}'? " if near else ""
        raise VaeganError(f"unknown preset '{name}': {hint}available: {', '.join(sorted(files))}")
    return yaml.safe_load(files[name].read_text()) or {}


def preset_description(name: str) -> str:
    return str(_read_preset(name).get("description", ""))


def load_preset(name: str) -> Config:
    """A preset YAML holds `description` plus config sections; every value is validated."""
    raw = dict(_read_preset(name))
    raw.pop("description", None)
    return from_dict(raw, where=f"preset '{name}'")


# ---- YAML, consistency and resume ----------------------------------------------------------------------------------

def to_yaml(cfg: Config) -> str:
    """The config as the YAML a run keeps in its config.yaml (readable by `from_dict(yaml.safe_load(...))`)."""
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False)


def check_consistency(cfg: Config) -> None:
    """Refuse combinations of valid values that describe no trainable model."""
    if cfg.model.name == "vaegan" and not (cfg.loss.d_on_recon or cfg.loss.d_on_prior):
        raise VaeganError("model.name=vaegan needs fakes for its discriminator: set loss.d_on_recon=true or "
                          "loss.d_on_prior=true")
    if cfg.model.name == "gan" and not cfg.loss.d_on_prior:
        raise VaeganError("model.name=gan has no encoder, so its discriminator sees prior samples only: "
                          "loss.d_on_prior must be true")
    if cfg.model.name == "gan" and cfg.train.vae_warmup_epochs > 0:
        raise VaeganError("model.name=gan has no VAE part to warm up: train.vae_warmup_epochs must be 0")
    if cfg.model.name == "gan" and cfg.loss.gan_weight == 0:
        raise VaeganError("model.name=gan trains on the GAN loss alone: loss.gan_weight must be > 0")
    if cfg.loss.perceptual_weight > 0 and cfg.model.name == "gan":
        raise VaeganError("loss.perceptual_weight > 0 compares reconstructions with their images: model.name=gan "
                          "has no encoder, so it must be 0")
    if cfg.loss.perceptual_weight > 0 and cfg.loss.perceptual_net == "classifier" and not cfg.loss.perceptual_weights:
        raise VaeganError("loss.perceptual_net=classifier needs loss.perceptual_weights=FILE, a classifier of the "
                          f"run's dataset: `vaegan classifier train --dataset {cfg.data.name} train.epochs=2` writes "
                          "one (the setting docs/quality.md measured)")
    for key, on in (("model.class_norm", cfg.model.class_norm), ("model.prior=class", cfg.model.prior == "class")):
        if on and not cfg.model.conditional:
            raise VaeganError(f"{key} conditions on the class label: it needs model.conditional=true")
    if cfg.model.class_norm and not cfg.model.batchnorm:
        raise VaeganError("model.class_norm gives G's BatchNorm layers per-class gains: it needs model.batchnorm=true")
    if cfg.loss.d_augment != "off" and cfg.model.name == "vae":
        raise VaeganError("loss.d_augment augments what the discriminator sees: model.name=vae has none")
    if cfg.loss.d_augment != "off" and cfg.loss.feature_weight > 0:
        raise VaeganError("loss.d_augment draws each image's augmentation apart, so feature matching would compare "
                          "a reconstruction and its image under different augmentations: set loss.feature_weight=0 "
                          "or loss.d_augment=off")
    if cfg.model.d_classifier and not (cfg.model.conditional and cfg.model.name in ("vaegan", "gan")):
        raise VaeganError("model.d_classifier gives the discriminator a class head: it needs model.conditional=true "
                          "and model.name=vaegan or gan")
    if cfg.model.d_classifier != (cfg.loss.class_weight > 0):
        raise VaeganError("model.d_classifier=true and loss.class_weight > 0 go together: the class head trains G "
                          "only through that weight (set both, or neither)")
    if cfg.loss.class_weight > 0 and not cfg.loss.d_on_prior:
        raise VaeganError("loss.class_weight > 0 asks D's class head to find the label in prior samples: it needs "
                          "loss.d_on_prior=true")
    if cfg.model.split_bn_stats and not (cfg.model.name == "vaegan" and cfg.loss.d_on_prior and cfg.model.batchnorm):
        raise VaeganError("model.split_bn_stats keeps G's BatchNorm statistics of reconstructions apart from those "
                          "of prior samples: it needs both passes and BatchNorm (model.name=vaegan, "
                          "loss.d_on_prior=true, model.batchnorm=true)")
    if cfg.model.sample_bn_stats != "prior" and not cfg.model.split_bn_stats:
        raise VaeganError(f"model.sample_bn_stats={cfg.model.sample_bn_stats} chooses between G's two sets of "
                          "BatchNorm statistics: it needs model.split_bn_stats=true (without it samples read the "
                          "one set every pass moves)")
    if cfg.loss.feature_weight > 0 and (cfg.model.name != "vaegan" or not cfg.loss.d_on_recon):
        raise VaeganError("loss.feature_weight > 0 matches reconstructions in D's features: it needs "
                          "model.name=vaegan and loss.d_on_recon=true")


def frozen_differences(old: Config, new: Config) -> list[str]:
    """Keys whose change would make a resumed run a different experiment."""
    keys = [k for k in all_keys() if k.split(".")[0] in RESUME_FROZEN_SECTIONS and k not in RESUME_FREE_KEYS]
    keys += list(RESUME_FROZEN_KEYS)
    return [k for k in keys if old.get(k) != new.get(k)]
