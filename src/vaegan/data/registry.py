"""Datasets by name: where their files live and how to load or prepare them."""

from __future__ import annotations

import os
from pathlib import Path

from vaegan.config import DATASET_NAMES, DataConfig
from vaegan.data.cifar import read_cifar
from vaegan.data.dataset import ImageDataset
from vaegan.data.download import cifar_folder
from vaegan.data.folder import read_folder
from vaegan.data.npz import read_npz
from vaegan.data.shapes10 import make_shapes10
from vaegan.errors import VaeganError
from vaegan.runs.cache import cache_dir
from vaegan.seeding import derive_seed

OWN_DATA = {"folder": "folder of images", "npz": ".npz file"}  # data.dir names what to read
NUM_CLASSES = {"cifar10": 10, "cifar100": 100, "shapes10": 10}  # own data counts the classes it holds
SPLITS = ("train", "test")
HELD_OUT_SEED = derive_seed(0, "test_fraction")  # one held-out test split per dataset, whatever the run's seed


def resolve_data_dir(configured: str | None) -> Path:
    """The data folder: the configured value, else $VAEGAN_DATA, else ~/.cache/vaegan."""
    chosen = configured or os.environ.get("VAEGAN_DATA") or Path.home() / ".cache" / "vaegan"
    return Path(chosen).expanduser().absolute()


def load_dataset(name: str, split: str, data_dir: str | None = None, download: bool = True,
                 seed: int = 0, test_fraction: float = 0.1) -> ImageDataset:
    """Load one split; CIFAR comes from its folder (downloaded if missing), shapes10 is generated from `seed`,
    own data is read from `data_dir` (its test split held out by `test_fraction` when it has none)."""
    _check_choice("dataset", name, DATASET_NAMES)
    _check_choice("split", split, SPLITS)
    if name == "shapes10":
        return make_shapes10(split, seed)
    if name in OWN_DATA:
        return _own_split(name, split, data_dir, test_fraction)
    return read_cifar(name, cifar_folder(name, resolve_data_dir(data_dir), download), split)


def _own_split(name: str, split: str, path: str | None, test_fraction: float) -> ImageDataset:
    if path is None:
        raise VaeganError(f"data.name={name} needs data.dir=PATH, the {OWN_DATA[name]} to read")
    train, test = read_folder(Path(path), cache_dir()) if name == "folder" else read_npz(Path(path))
    if test is None:
        train, test = train.hold_out(test_fraction, HELD_OUT_SEED)
    return train if split == "train" else test


def load_split(data: DataConfig, split: str, seed: int) -> ImageDataset:
    """One split as a run's `data` config describes it: the training split cut to `data.train_subset` images
    (class-balanced, drawn from the run's `seed`, so each seed of an ablation sees its own subset)."""
    dataset = load_dataset(data.name, split, data.dir, download=data.download, test_fraction=data.test_fraction)
    if split != "train" or data.train_subset is None:
        return dataset
    if data.train_subset > len(dataset):
        raise VaeganError(f"data.train_subset={data.train_subset} is more than the {len(dataset)} training images "
                          f"of {data.name}")
    return dataset.balanced_subset(data.train_subset, derive_seed(seed, "train_subset"))


def prepare_dataset(name: str, data_dir: str | None = None) -> dict:
    """Download (if needed) and read both splits, for `vaegan data prepare`: {"path", "train", "test", "classes"};
    own data is read (and a folder's decoded images cached) once, so that its problems show before training."""
    _check_choice("dataset", name, DATASET_NAMES)
    if name == "shapes10":
        path = "(shapes10 is generated in memory; nothing to download)"
    elif name in OWN_DATA:
        path = str(Path(data_dir).expanduser().absolute()) if data_dir else ""
    else:
        path = str(cifar_folder(name, resolve_data_dir(data_dir)))
    train, test = (load_dataset(name, split, data_dir) for split in SPLITS)
    return {"path": path, "train": len(train), "test": len(test), "classes": train.num_classes}


def _check_choice(kind: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise VaeganError(f"unknown {kind} '{value}': choose one of {', '.join(choices)}")
