import pytest
import torch

from vaegan.config import DataConfig
from vaegan.data import ImageDataset, load_split, make_shapes10
from vaegan.errors import VaeganError


def test_head_keeps_the_first_images_and_their_labels():
    full = make_shapes10("test", test_size=50)
    part = full.head(7)
    assert len(part) == 7 and part.class_names == full.class_names
    assert (part.images == full.images[:7]).all() and (part.labels == full.labels[:7]).all()
    assert len(full.head(500)) == 50


def test_shards_hold_every_image_once_in_order_however_the_count_divides():
    full = make_shapes10("test", test_size=33)
    for world_size in (1, 2, 3, 5, 40):
        shards = [full.shard(rank, world_size) for rank in range(world_size)]
        assert torch.equal(torch.cat([s.images for s in shards]), full.images)
        assert torch.equal(torch.cat([s.labels for s in shards]), full.labels)
        assert max(map(len, shards)) - min(map(len, shards)) <= 1


def test_a_balanced_subset_has_equal_classes_is_fixed_by_its_seed_and_keeps_dataset_order():
    full = make_shapes10("train", train_size=600)
    subset = full.balanced_subset(95, seed=7)
    counts = torch.bincount(subset.labels, minlength=10).tolist()
    assert len(subset) == 95 and counts == [10] * 5 + [9] * 5
    again, other = full.balanced_subset(95, seed=7), full.balanced_subset(95, seed=8)
    assert torch.equal(again.images, subset.images) and not torch.equal(other.images, subset.images)
    positions = [next(i for i in range(len(full)) if torch.equal(full.images[i], image)) for image in subset.images[:5]]
    assert positions == sorted(positions)


def test_a_subset_larger_than_a_class_allows_is_refused_with_the_class_named():
    labels = torch.tensor([0] * 2 + [1] * 8)
    skewed = ImageDataset("mine", "train", torch.zeros(10, 3, 32, 32, dtype=torch.uint8), labels, ["cat", "dog"])
    assert torch.bincount(skewed.balanced_subset(4, seed=0).labels).tolist() == [2, 2]
    with pytest.raises(VaeganError, match="needs 3 of class 'cat', which has 2"):
        skewed.balanced_subset(6, seed=0)
    with pytest.raises(VaeganError, match="must hold 1 to 10"):
        skewed.balanced_subset(11, seed=0)


def test_load_split_cuts_the_training_split_only_and_by_the_run_seed():
    data = DataConfig(name="shapes10", train_subset=30)
    train, test = load_split(data, "train", seed=1), load_split(data, "test", seed=1)
    assert len(train) == 30 and len(test) == len(load_split(DataConfig(name="shapes10"), "test", seed=1))
    assert not torch.equal(train.images, load_split(data, "train", seed=2).images)
    with pytest.raises(VaeganError, match="data.train_subset=20000 is more than the 10000 training images"):
        load_split(DataConfig(name="shapes10", train_subset=20000), "train", seed=0)


def test_the_fingerprint_follows_the_content_not_the_name():
    full = make_shapes10("test", test_size=20)
    same = ImageDataset("another-name", "train", full.images.clone(), full.labels.clone(), list(full.class_names))
    assert same.fingerprint == full.fingerprint and len(full.fingerprint) == 64
    pixel = full.images.clone()
    pixel[3, 1, 5, 7] ^= 1
    assert ImageDataset(full.name, "test", pixel, full.labels, full.class_names).fingerprint != full.fingerprint
    labels = full.labels.clone()
    labels[0] = (labels[0] + 1) % 10
    assert ImageDataset(full.name, "test", full.images, labels, full.class_names).fingerprint != full.fingerprint
    renamed = [*full.class_names[1:], full.class_names[0]]
    assert ImageDataset(full.name, "test", full.images, full.labels, renamed).fingerprint != full.fingerprint
    assert full.head(10).fingerprint not in (full.fingerprint, full.head(11).fingerprint)
