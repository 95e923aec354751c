from vaegan.data import make_shapes10


def test_head_keeps_the_first_images_and_their_labels():
    full = make_shapes10("test", test_size=50)
    part = full.head(7)
    assert len(part) == 7 and part.class_names == full.class_names
    assert (part.images == full.images[:7]).all() and (part.labels == full.labels[:7]).all()
    assert len(full.head(500)) == 50
