"""The cache of real-image features: keyed by the images' content, and never fatal when it cannot be written."""

import errno
import logging
import os
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from vaegan.data import ImageDataset
from vaegan.evaluation import features as feat
from vaegan.evaluation.suite import Evaluation


def dataset(images: torch.Tensor, name: str = "photos-1234abcd") -> ImageDataset:
    return ImageDataset(name, "test", images, torch.arange(len(images)) % 2, ["a", "b"])


def mean_pixel(images: torch.Tensor) -> dict[str, torch.Tensor]:
    return {"features": images.flatten(1).mean(1, keepdim=True)}


def reals(cache, images: torch.Tensor, name: str = "photos-1234abcd") -> np.ndarray:
    """The test features of `images` as `vaegan evaluate` asks for them."""
    run = SimpleNamespace(dataset=lambda split: dataset(images, name), device=torch.device("cpu"), uses_ema=False)
    return Evaluation(run, 6, 0, None, None, cache).reals("test", "mean-pixel", mean_pixel)["features"]


def test_changed_images_under_an_unchanged_name_get_new_features(tmp_path):
    images = torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8)
    first = reals(tmp_path, images)
    changed = reals(tmp_path, 255 - images)  # same name, split and count: only the pixels differ
    assert not np.allclose(first, changed)
    assert np.allclose(changed, -first, atol=1e-6)  # mean_pixel of 255 - x on [-1, 1] is -mean_pixel(x)
    assert len(list((tmp_path / "features").iterdir())) == 2


def test_a_cache_that_cannot_be_written_warns_once_and_returns_the_features(tmp_path, monkeypatch, caplog):
    features = {"features": np.ones((3, 2), dtype=np.float32)}
    not_a_folder = tmp_path / "cache"
    not_a_folder.write_bytes(b"a user's file")  # the cache folder cannot be made: mkdir fails
    with caplog.at_level(logging.WARNING):
        for key in ("a", "b"):
            assert feat.cached_features(not_a_folder, key, lambda: features) == features
    assert [r.getMessage().startswith("could not cache the features") for r in caplog.records] == [True]
    assert not_a_folder.read_bytes() == b"a user's file"

    def full_disk(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(os, "fsync", full_disk)
    assert feat.cached_features(tmp_path / "full", "a", lambda: features) == features
    assert not any((tmp_path / "full" / "features").iterdir())  # no temporary file left behind


def test_a_long_dataset_name_makes_a_legal_cache_file_name(tmp_path, monkeypatch):
    images = torch.zeros(2, 3, 32, 32, dtype=torch.uint8)
    first = reals(tmp_path, images, name="x" * 300)
    monkeypatch.setattr(feat, "extract", lambda *args: pytest.fail("computed again"))
    assert np.array_equal(reals(tmp_path, images, name="x" * 300), first)  # read from the cache
    assert [len(p.name.encode()) < 255 for p in (tmp_path / "features").iterdir()] == [True]
