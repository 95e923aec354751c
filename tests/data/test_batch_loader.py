import pytest
import torch

from vaegan.data import BatchLoader, ImageDataset
from vaegan.errors import VaeganError


def _dataset(size=22):
    """Labels equal indices, so each batch's y shows which images it holds."""
    images = torch.randint(0, 256, (size, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    return ImageDataset("tiny", "train", images, torch.arange(size), [f"c{i}" for i in range(10)])


def _all(loader, epoch, start=0):
    return [(x, y) for x, y in loader.epoch_batches(epoch, start)]


def test_values_are_exact_normalisation_without_augmentation():
    data = _dataset()
    x, y = next(BatchLoader(data, 5, shuffle=False).epoch_batches(0))
    assert x.dtype == torch.float32 and x.shape == (5, 3, 32, 32) and y.dtype == torch.int64
    assert torch.equal(x, data.images[:5].float() / 127.5 - 1) and x.min() >= -1 and x.max() <= 1


@pytest.mark.parametrize("shuffle", [False, True])
def test_epoch_covers_every_index_once(shuffle):
    loader = BatchLoader(_dataset(20), 4, shuffle=shuffle, drop_last=False)
    seen = torch.cat([y for _, y in _all(loader, 3)])
    assert len(loader) == 5 and sorted(seen.tolist()) == list(range(20))


def test_shuffle_changes_with_epoch_and_seed_but_repeats_exactly():
    def order(seed, epoch):
        return torch.cat([y for _, y in _all(BatchLoader(_dataset(), 4, seed=seed), epoch)]).tolist()
    assert order(0, 1) == order(0, 1) and order(0, 1) != order(0, 2) and order(0, 1) != order(1, 1)


def test_resume_matches_the_tail_of_a_full_epoch():
    loader = BatchLoader(_dataset(), 4, hflip=True, crop_padding=4, seed=7)
    full, resumed = _all(loader, 2), _all(loader, 2, start=3)
    assert len(full) == 5 and len(resumed) == 2
    for (x_full, y_full), (x_res, y_res) in zip(full[3:], resumed, strict=True):
        assert torch.equal(x_full, x_res) and torch.equal(y_full, y_res)
    assert not torch.equal(full[0][0], _all(BatchLoader(_dataset(), 4, seed=7), 2)[0][0])  # augmentation ran


def test_ranks_are_disjoint_equal_and_cover_the_epoch():
    data = _dataset(23)
    ranks = [BatchLoader(data, 3, seed=1, rank=r, world_size=2) for r in range(2)]
    seen = [torch.cat([y for _, y in _all(loader, 0)]).tolist() for loader in ranks]
    assert len(ranks[0]) == len(ranks[1]) == 3 and len(seen[0]) == len(seen[1]) == 9
    assert not set(seen[0]) & set(seen[1])
    everything = [BatchLoader(data, 11, seed=1, rank=r, world_size=2, drop_last=False) for r in range(2)]
    union = {i for loader in everything for _, y in _all(loader, 0) for i in y.tolist()}
    permutation = torch.cat([y for _, y in _all(BatchLoader(data, 22, seed=1), 0)]).tolist()
    assert union == set(permutation[:22])  # the epoch's permutation with its odd tail dropped


def test_len_drop_last_and_channels_last():
    data = _dataset(22)
    assert len(BatchLoader(data, 5)) == 4 and len(BatchLoader(data, 5, drop_last=False)) == 5
    x, _ = next(BatchLoader(data, 5, channels_last=True).epoch_batches(0))
    assert x.is_contiguous(memory_format=torch.channels_last)


def test_bad_settings_are_user_errors():
    with pytest.raises(VaeganError, match="too few"):
        BatchLoader(_dataset(3), 4)
    with pytest.raises(VaeganError, match="rank 2"):
        BatchLoader(_dataset(), 2, rank=2, world_size=2)
    with pytest.raises(VaeganError, match="batch 6"):
        BatchLoader(_dataset(), 4).epoch_batches(0, start=6)


def _host_path(loader, epoch, start=0):
    """The loader as it was before the split moved to the device: gather and normalise each batch on the host,
    then draw its augmentation from the batch's own generator (crop offsets first, then flips)."""
    from vaegan.data.augment import crop
    from vaegan.seeding import derive_seed

    indices = loader._rank_indices(epoch)
    out = []
    for batch in range(start, loader.num_batches):
        chosen = indices[batch * loader.batch_size:(batch + 1) * loader.batch_size]
        x = loader.dataset.images.index_select(0, chosen).float().div_(127.5).sub_(1.0)
        generator = torch.Generator().manual_seed(derive_seed(loader.seed, epoch, batch, loader.rank))
        if loader.crop_padding:
            top, left = torch.randint(0, 2 * loader.crop_padding + 1, (2, len(x)), generator=generator)
            x = crop(x, loader.crop_padding, top, left)
        if loader.hflip:
            flip = torch.rand(len(x), generator=generator) < 0.5
            x = torch.where(flip[:, None, None, None], x.flip(-1), x)
        out.append((x, loader.dataset.labels.index_select(0, chosen)))
    return out


@pytest.mark.parametrize("hflip, padding, drop_last, world", [(True, 4, True, 1), (False, 0, False, 1),
                                                              (True, 2, False, 2), (False, 3, True, 1)])
def test_the_device_path_equals_the_host_path_bit_for_bit(hflip, padding, drop_last, world, device):
    for rank in range(world):
        loader = BatchLoader(_dataset(22), 4, hflip=hflip, crop_padding=padding, seed=3, drop_last=drop_last,
                             rank=rank, world_size=world, device=device)
        for epoch, start in ((0, 0), (5, 2)):
            expected, got = _host_path(loader, epoch, start), _all(loader, epoch, start)
            assert len(expected) == len(got) and all(x.device.type == device for x, _ in got)
            assert all(torch.equal(a[0], b[0].cpu()) and torch.equal(a[1], b[1].cpu()) for a, b in zip(expected, got))
