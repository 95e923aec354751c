"""What an ablation grid is: named variants, each a preset plus overrides, and the claims to check.

Built in: `regularization` (the CIFAR-10 reference table: each regulariser alone, all together, and all but
one) and `baselines` (the CIFAR-100 presets). A YAML file works too:

    base: vae-cifar10                    # a preset
    overrides: {train.max_steps: 2000}   # applied to every variant
    variants:                            # name -> its own overrides
      none: {}
      beta4: {loss.beta: 4}
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from vaegan.config import Config, apply_overrides, flatten, load_preset, parse_override_args
from vaegan.errors import VaeganError


@dataclass(frozen=True)
class Variant:
    name: str
    preset: str
    overrides: dict[str, Any]

    def config(self, common: dict[str, Any]) -> Config:
        return apply_overrides(load_preset(self.preset), {**common, **self.overrides})


@dataclass(frozen=True)
class Claim:
    """A statement of the reference table: `column` is lower in `better` than in `worse`."""

    text: str
    column: str
    better: str
    worse: str


@dataclass
class Grid:
    name: str
    variants: list[Variant]
    overrides: dict[str, Any] = field(default_factory=dict)
    claims: list[Claim] = field(default_factory=list)


# The regularisers of the CIFAR-10 reference, each as the overrides that switch it on over `vae-cifar10`.
REGULARIZERS = {
    "weight_decay": {"optim.weight_decay": 1e-4},
    "dropout": {"model.dropout": 0.3},
    "batchnorm": {"model.batchnorm": True},
    "beta4": {"loss.beta": 4.0},
    "augmentation": {"data.hflip": True, "data.crop_padding": 4},
}
ALL_EXTRA = {"model.noise_scale": 0.3}  # the regularised preset also samples with noise scale 0.3


def _merged(parts) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for part in parts:
        merged.update(part)
    return merged


def regularization_grid() -> Grid:
    variants = [Variant("none", "vae-cifar10", {})]
    variants += [Variant(f"+{name}", "vae-cifar10", overrides) for name, overrides in REGULARIZERS.items()]
    variants.append(Variant("all", "vae-cifar10", _merged([*REGULARIZERS.values(), ALL_EXTRA])))
    variants += [Variant(f"all-{left_out}", "vae-cifar10",
                         _merged([o for n, o in REGULARIZERS.items() if n != left_out] + [ALL_EXTRA]))
                 for left_out in REGULARIZERS]
    claims = [Claim("reconstruction loss (test MSE per pixel): lower with regularisation", "test_mse", "all", "none"),
              Claim("KL: controlled (lower) with regularisation", "kl", "all", "none"),
              Claim("overfitting (test - train MSE): smaller with regularisation", "gap", "all", "none"),
              Claim("stability (loss std over the last 20% of steps): lower with regularisation", "loss_std",
                    "all", "none")]
    return Grid("regularization", variants, claims=claims)


def baselines_grid() -> Grid:
    names = ["vae-cifar100", "gan-cifar100", "cvaegan-cifar100", "cvaegan-cifar100-plus"]
    return Grid("baselines", [Variant(name, name, {}) for name in names])


BUILT_IN = {"regularization": regularization_grid, "baselines": baselines_grid}


# Each variant becomes the folder OUT/VARIANT: one plain name, never a path (no separators, not `.` or `..`).
_VARIANT_NAME = re.compile(r"[A-Za-z0-9_.+=-]+")


def load_grid(spec: str) -> Grid:
    """A built-in grid by name, or a YAML file (see the module docstring). Values are validated now, so that a
    typo fails before any training starts; whatever is wrong in a file is one VaeganError naming it."""
    if spec in BUILT_IN:
        return _validated(BUILT_IN[spec]())
    path = Path(spec)
    if not path.is_file():
        raise VaeganError(f"unknown grid '{spec}': use {', '.join(BUILT_IN)} or a YAML file")
    try:
        return _validated(_read_grid_file(path))
    except VaeganError as err:
        raise VaeganError(f"{path}: {err}") from None


def _read_grid_file(path: Path) -> Grid:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, RecursionError) as err:  # RecursionError: nested thousands deep
        raise VaeganError(f"not a readable grid YAML file ({err})") from None
    except yaml.YAMLError as err:  # a `!!python/...` tag included: safe_load refuses it without running it
        raise VaeganError(f"not a readable grid YAML file ({_yaml_problem(err)})") from None
    if not (isinstance(raw, dict) and isinstance(raw.get("base"), str) and isinstance(raw.get("variants"), dict)
            and raw["variants"]):
        raise VaeganError("a grid needs `base: PRESET` and `variants: {name: {key: value}}`")
    unknown = set(raw) - {"base", "overrides", "variants"}
    if unknown:
        raise VaeganError(f"unknown grid keys {', '.join(sorted(map(str, unknown)))}; allowed: base, overrides, "
                          "variants")
    variants = [Variant(_variant_name(name), raw["base"], _dotted(overrides, f"variant {name}"))
                for name, overrides in raw["variants"].items()]
    return Grid(path.stem, variants, _dotted(raw.get("overrides"), "overrides"))


def _yaml_problem(err: yaml.YAMLError) -> str:
    """PyYAML's message spans lines (context, snippet, caret): its problem and position fit in one."""
    if isinstance(err, yaml.MarkedYAMLError) and err.problem and err.problem_mark:
        return f"{err.problem} at line {err.problem_mark.line + 1}, column {err.problem_mark.column + 1}"
    return str(err).splitlines()[0]


def _variant_name(name: Any) -> str:
    text = str(name)
    if not _VARIANT_NAME.fullmatch(text) or not text.strip("."):
        raise VaeganError(f"variant name {text!r} is not a plain folder name; use letters, digits and _ . + = - "
                          "(not only dots)")
    return text


def _validated(grid: Grid) -> Grid:
    for variant in grid.variants:
        try:
            variant.config(grid.overrides)
        except VaeganError as err:
            raise VaeganError(f"variant {variant.name}: {err}") from None
    return grid


def _dotted(overrides: dict[str, Any] | None, where: str) -> dict[str, Any]:
    """Accept `{train.max_steps: 5}` or nested `{train: {max_steps: 5}}` (or nothing); check every key."""
    if overrides is None:
        return {}
    if not isinstance(overrides, dict):
        raise VaeganError(f"{where}: expected a mapping of config keys to values, got a {type(overrides).__name__}")
    flat = {}
    for key, value in overrides.items():
        if isinstance(value, dict):
            flat.update(flatten({key: value}, where))
        else:
            flat[str(key)] = value
    try:
        parse_override_args([f"{key}=" for key in flat])  # unknown keys -> one error naming the nearest key
    except VaeganError as err:
        raise VaeganError(f"{where}: {err}") from None
    return flat
