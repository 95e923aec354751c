import torch

from vaegan.data import make_shapes10


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
