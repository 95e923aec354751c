import torch
import torch.nn.functional as F

from vaegan.data.augment import augment, crop, draw_augmentation


def _distinct(batch=8, size=6):
    """Images whose every value is unique, so a window can be located exactly."""
    return torch.arange(batch * 3 * size * size, dtype=torch.float32).reshape(batch, 3, size, size) / 1000


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def random_hflip(x, generator):
    return augment(x, 0, draw_augmentation(len(x), 0, True, generator))


def random_crop(x, padding, generator):
    return augment(x, padding, draw_augmentation(len(x), padding, False, generator))


def test_hflip_mirrors_some_and_leaves_the_rest():
    x = _distinct(batch=64)
    out = random_hflip(x, _gen(0))
    flipped = (out == x.flip(-1)).flatten(1).all(1)
    kept = (out == x).flatten(1).all(1)
    assert torch.all(flipped ^ kept) and 0 < int(flipped.sum()) < 64


def test_crop_at_known_offsets_is_the_padded_window():
    x, padding = _distinct(batch=2, size=5), 2
    top, left = torch.tensor([0, 3]), torch.tensor([4, 1])
    padded = F.pad(x, (padding,) * 4, value=-1.0)
    out = crop(x, padding, top, left)
    assert torch.equal(out[0], padded[0, :, 0:5, 4:9]) and torch.equal(out[1], padded[1, :, 3:8, 1:6])


def test_random_crop_keeps_size_and_pads_black():
    x, padding = _distinct(batch=32), 3
    out = random_crop(x, padding, _gen(0))
    padded = F.pad(x, (padding,) * 4, value=-1.0)
    assert out.shape == x.shape
    for image, source in zip(out, padded, strict=True):  # each output is exactly one window of its padded image
        windows = source.unfold(1, 6, 1).unfold(2, 6, 1).permute(1, 2, 0, 3, 4)  # [7,7,3,6,6]
        assert int((windows == image).flatten(2).all(2).sum()) == 1
    assert (out == -1.0).any() and set(out[out < 0].tolist()) == {-1.0}


def test_same_seed_same_augmentation_other_seed_differs():
    x = _distinct(batch=16)
    def both(seed):
        return augment(x, 4, draw_augmentation(len(x), 4, True, _gen(seed)))
    assert torch.equal(both(1), both(1)) and not torch.equal(both(1), both(2))
