import time

import torch

from vaegan.data import SHAPES10_CLASS_NAMES, load_dataset, make_shapes10


def test_deterministic_per_seed_and_split():
    a, b = make_shapes10("train", seed=3, train_size=200), make_shapes10("train", seed=3, train_size=200)
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert not torch.equal(a.images, make_shapes10("train", seed=4, train_size=200).images)
    assert not torch.equal(a.images[:100], make_shapes10("test", seed=3, test_size=100).images)


def test_ten_balanced_classes_in_shape():
    data = make_shapes10("test", test_size=500)
    assert data.images.shape == (500, 3, 32, 32) and data.images.dtype == torch.uint8
    assert data.labels.dtype == torch.int64 and torch.bincount(data.labels).tolist() == [50] * 10
    assert data.class_names == SHAPES10_CLASS_NAMES and data.num_classes == 10 and data.name == "shapes10"


def test_classes_differ_in_mean_colour():
    data = make_shapes10("train", train_size=1000)
    means = torch.stack([data.images[data.labels == k].float().mean((0, 2, 3)) for k in range(10)])
    distances = torch.cdist(means, means) + torch.eye(10) * 1e3
    assert distances.min() > 3  # no two classes share a colour profile


def test_default_size_is_fast():
    start = time.perf_counter()
    train = load_dataset("shapes10", "train", seed=0)
    assert time.perf_counter() - start < 3 and len(train) == 10_000
    assert len(load_dataset("shapes10", "test", seed=0)) == 2_000
