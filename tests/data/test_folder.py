import logging
import os
import threading

import numpy as np
import pytest
import torch
from PIL import Image

from vaegan.config import DataConfig
from vaegan.data import load_split
from vaegan.data import folder as folder_module
from vaegan.data.folder import read_folder
from vaegan.errors import VaeganError

def uniform(path, colour, size):
    Image.new("RGB", size, colour).save(path)


def test_class_folders_give_labels_in_sorted_order_and_32x32_rgb_of_every_size(tmp_path, image_folder):
    image_folder(tmp_path / "data")
    uniform(tmp_path / "data" / "circle" / "grey.png", (10, 200, 30), (90, 40))
    Image.new("L", (20, 50), 77).save(tmp_path / "data" / "square" / "gray.png")
    train, test = read_folder(tmp_path / "data", None)
    assert test is None and train.class_names == ["circle", "square", "triangle"]
    assert train.images.dtype == torch.uint8 and train.images.shape == (20, 3, 32, 32)
    assert torch.bincount(train.labels).tolist() == [7, 7, 6]
    by_name = {path.name: i for i, path in enumerate(sorted((tmp_path / "data" / "circle").iterdir()))}
    colour = train.images[by_name["grey.png"]]
    assert (colour.flatten(1).float().mean(1) - torch.tensor([10.0, 200.0, 30.0])).abs().max() < 1
    assert (train.images[train.labels == 1][6] == 77).all()  # greyscale becomes three equal channels


def test_the_shorter_side_is_resized_and_the_centre_kept(tmp_path):
    root = tmp_path / "flat"
    root.mkdir()
    wide = np.zeros((32, 96, 3), dtype=np.uint8)
    wide[:, 32:64] = 255  # white centre third, black sides
    Image.fromarray(wide).save(root / "wide.png")
    train, _ = read_folder(root, None)
    assert (train.images[0] == 255).all()


def test_a_flat_folder_is_one_unconditional_class(tmp_path):
    root = tmp_path / "flat"
    root.mkdir()
    for i in range(3):
        uniform(root / f"{i}.png", (i, i, i), (32, 32))
    train, _ = read_folder(root, None)
    assert train.class_names == ["image"] and train.labels.tolist() == [0, 0, 0]


def test_a_test_subfolder_is_the_test_split_and_must_hold_the_same_classes(tmp_path, image_folder):
    root = tmp_path / "data"
    image_folder(root)
    image_folder(root / "test", per_class=2)
    train, test = read_folder(root, None)
    assert len(train) == 18 and len(test) == 6 and test.split == "test"
    assert test.class_names == train.class_names and train.name == test.name
    (root / "test" / "triangle").rename(root / "test" / "star")
    with pytest.raises(VaeganError, match="differ"):
        read_folder(root, None)


def test_without_a_test_folder_a_fixed_fraction_of_each_class_is_held_out(tmp_path, image_folder):
    image_folder(tmp_path / "data", per_class=20)
    cfg = DataConfig(name="folder", dir=str(tmp_path / "data"), test_fraction=0.25)
    train, test = (load_split(cfg, split, seed=3) for split in ("train", "test"))
    assert len(train) == 45 and len(test) == 15 and torch.bincount(test.labels).tolist() == [5, 5, 5]
    again = load_split(cfg, "test", seed=99)  # the run's seed does not move the test split
    assert torch.equal(again.images, test.images)
    together = torch.cat([train.images, test.images]).flatten(1)
    assert len(torch.unique(together, dim=0)) == 60  # no image in both


def test_unreadable_images_are_skipped_and_named_and_too_many_refuse_the_folder(tmp_path, caplog, image_folder):
    root = tmp_path / "data"
    image_folder(root, per_class=20)
    (root / "circle" / "notes.txt").write_text("not an image")
    (root / "circle" / "text.jpg").write_text("not an image either")
    cut = (root / "square" / "000.png").read_bytes()
    (root / "square" / "000.png").write_bytes(cut[: len(cut) // 2])
    with caplog.at_level(logging.WARNING):
        train, _ = read_folder(root, None)
    assert len(train) == 59
    messages = " ".join(caplog.messages)
    assert "skipped 2 of 61" in messages and "text.jpg" in messages and "000.png" in messages
    assert "ignored 1 file" in messages and "notes.txt" in messages
    for i in range(1, 4):
        (root / "triangle" / f"broken{i}.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    with pytest.raises(VaeganError, match=r"5 of 64 images .* cannot be read"):
        read_folder(root, None)


def test_an_image_bomb_is_refused_by_pillows_guard(tmp_path, monkeypatch, caplog, image_folder):
    root = tmp_path / "data"
    image_folder(root, per_class=30)
    uniform(root / "circle" / "huge.png", (1, 2, 3), (400, 400))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100 * 100)
    with caplog.at_level(logging.WARNING):
        train, _ = read_folder(root, None)
    assert len(train) == 90 and "decompression-bomb" in " ".join(caplog.messages)


@pytest.mark.parametrize("layout, message", [
    ("empty class", "holds no images"),
    ("one class", "one class folder only"),
    ("mixed", "both images"),
    ("nothing", "no images"),
])
def test_folders_that_cannot_make_a_dataset_are_refused_with_the_reason(tmp_path, layout, message, image_folder):
    root = tmp_path / "data"
    root.mkdir()
    if layout == "empty class":
        image_folder(root)
        (root / "empty").mkdir()
    elif layout == "one class":
        image_folder(root, classes=("circle",))
    elif layout == "mixed":
        image_folder(root)
        uniform(root / "loose.png", (0, 0, 0), (32, 32))
    with pytest.raises(VaeganError, match=message):
        read_folder(root, None)


def test_symlinks_leading_outside_the_folder_are_not_followed(tmp_path, caplog, image_folder):
    outside = tmp_path / "private"
    image_folder(outside, classes=("secret", "other"))
    root = tmp_path / "data"
    image_folder(root)
    os.symlink(outside / "secret" / "000.png", root / "circle" / "link.png")
    os.symlink(outside / "secret", root / "secret")
    os.symlink(root / "square" / "001.jpg", root / "circle" / "inside.jpg")
    with caplog.at_level(logging.WARNING):
        train, _ = read_folder(root, None)
    assert train.class_names == ["circle", "square", "triangle"] and len(train) == 19
    assert "not followed: 2 symlink" in " ".join(caplog.messages)


def test_symlinks_that_lead_nowhere_are_skipped_and_named(tmp_path, caplog, image_folder):
    root = tmp_path / "data"
    image_folder(root)
    os.symlink(root / "circle" / "missing.png", root / "circle" / "dangling.png")
    os.symlink("self.png", root / "circle" / "self.png")
    os.symlink("b.png", root / "square" / "a.png")
    os.symlink("a.png", root / "square" / "b.png")
    os.symlink("loop", root / "loop")  # a looping link where a class folder would be
    with caplog.at_level(logging.WARNING):
        train, _ = read_folder(root, None)
    assert train.class_names == ["circle", "square", "triangle"] and len(train) == 18
    messages = " ".join(caplog.messages)
    assert "skipped 5 broken symlink(s) (dangling or in a loop)" in messages
    assert "loop; circle/dangling.png; circle/self.png; ..." in messages


def test_a_named_pipe_is_skipped_and_named_without_being_opened(tmp_path, caplog, image_folder):
    root = tmp_path / "data"
    image_folder(root)
    os.mkfifo(root / "circle" / "pipe.png")
    read = {}
    reader = threading.Thread(target=lambda: read.update(dataset=read_folder(root, None)[0]), daemon=True)
    with caplog.at_level(logging.WARNING):
        reader.start()
        reader.join(timeout=10)
    if reader.is_alive():  # blocked opening the pipe: a writer lets it go before the test fails
        os.close(os.open(root / "circle" / "pipe.png", os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail("reading the folder opened the named pipe and waited for a writer")
    assert len(read["dataset"]) == 18
    assert "skipped 1 special file(s) (named pipes, sockets, devices)" in " ".join(caplog.messages)
    assert "circle/pipe.png" in " ".join(caplog.messages)


def test_decoded_images_are_cached_and_read_again_when_the_folder_changes(tmp_path, monkeypatch, image_folder):
    root, cache = tmp_path / "data", tmp_path / "cache"
    image_folder(root)
    first, _ = read_folder(root, cache)
    assert len(list((cache / "folders").iterdir())) == 1

    def no_decoding(path):
        raise AssertionError("decoded again")

    with monkeypatch.context() as patched:
        patched.setattr(folder_module, "_decode", no_decoding)
        cached, _ = read_folder(root, cache)
    assert torch.equal(cached.images, first.images) and cached.name == first.name
    uniform(root / "circle" / "new.png", (9, 9, 9), (32, 32))
    changed, _ = read_folder(root, cache)
    assert len(changed) == len(first) + 1 and changed.name != first.name


def test_a_damaged_cache_file_is_decoded_again(tmp_path, image_folder):
    root, cache = tmp_path / "data", tmp_path / "cache"
    image_folder(root)
    first, _ = read_folder(root, cache)
    stored = next((cache / "folders").iterdir())
    stored.write_bytes(stored.read_bytes()[:100])
    again, _ = read_folder(root, cache)
    assert torch.equal(again.images, first.images)


def test_load_split_needs_data_dir_and_an_existing_folder(tmp_path):
    with pytest.raises(VaeganError, match="needs data.dir"):
        load_split(DataConfig(name="folder"), "train", 0)
    with pytest.raises(VaeganError, match="is not a folder"):
        load_split(DataConfig(name="folder", dir=str(tmp_path / "missing")), "train", 0)


def test_an_extreme_strip_is_cropped_before_the_resize_so_memory_stays_bounded(tmp_path, monkeypatch):
    root = tmp_path / "flat"
    root.mkdir()
    uniform(root / "square.png", (1, 2, 3), (40, 40))
    strip = np.zeros((1, 2_000_000, 3), dtype=np.uint8)
    strip[:, 1_000_000 - 8:1_000_000 + 8] = (0, 255, 0)  # the centre, with a margin wider than bicubic's reach
    Image.fromarray(strip).save(root / "strip.png")
    resize = Image.Image.resize

    def bounded(image, size, *args, **kwargs):
        assert size[0] * size[1] <= 10 ** 6, f"resize to {size}"
        return resize(image, size, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "resize", bounded)
    train, _ = read_folder(root, None)
    assert len(train) == 2 and (train.images[1] == torch.tensor([0, 255, 0]).view(3, 1, 1)).all()


def _wide(mode, value):
    """A uniform 40x40 image of a mode with more than 8 bits a pixel."""
    dtype = {"I;16": "<u2", "I;16B": ">u2", "I": "<i4", "F": "<f4"}[mode]
    return Image.frombytes(mode, (40, 40), np.full((40, 40), value, dtype=dtype).tobytes())


def _with_transparent_index():
    image = Image.new("P", (40, 40), 1)
    image.putpalette([200, 100, 50, 0, 0, 0])
    image.info["transparency"] = 1
    return image


@pytest.mark.parametrize("image, fmt, expected", [
    (Image.new("L", (40, 40), 128), "PNG", (128, 128, 128)),
    (_wide("I;16", 32768), "PNG", (128, 128, 128)),  # 16-bit grey PNG, the same grey as the 8-bit one
    (_wide("I;16", 65535), "PNG", (255, 255, 255)),
    (_wide("I;16B", 4096), "PNG", (16, 16, 16)),
    (_wide("I", 32768), "TIFF", (128, 128, 128)),  # Pillow reads by content: a TIFF named .png is read too
    (_wide("F", 0.5), "TIFF", (128, 128, 128)),
    (Image.new("1", (40, 40), 1), "PNG", (255, 255, 255)),
    (Image.new("LA", (40, 40), (128, 255)), "PNG", (128, 128, 128)),
    (Image.new("LA", (40, 40), (0, 0)), "PNG", (255, 255, 255)),  # transparent: over white, not its hidden black
    (Image.new("RGBA", (40, 40), (200, 100, 50, 0)), "PNG", (255, 255, 255)),
    (Image.new("RGBA", (40, 40), (200, 100, 50, 255)), "PNG", (200, 100, 50)),
    (Image.new("RGBA", (40, 40), (0, 0, 0, 128)), "PNG", (127, 127, 127)),
    (Image.new("P", (40, 40), 0).convert("P"), "PNG", (0, 0, 0)),
    (_with_transparent_index(), "PNG", (255, 255, 255)),
    (Image.new("CMYK", (40, 40), (0, 255, 0, 0)), "TIFF", (255, 0, 255)),
    (Image.new("YCbCr", (40, 40), (128, 128, 128)), "TIFF", (128, 128, 128)),
])
def test_every_pixel_mode_becomes_8_bit_rgb_with_the_values_it_means(tmp_path, image, fmt, expected):
    root = tmp_path / "flat"
    root.mkdir()
    image.save(root / "image.png", format=fmt)
    train, _ = read_folder(root, None)
    assert train.images[0].flatten(1).T.unique(dim=0).tolist() == [list(expected)]


@pytest.mark.parametrize("image, reason", [
    (_wide("F", 2.0), "mode F (float) with values 2.0..2.0, outside 0..1"),
    (_wide("I", 70000), "mode I (32-bit integer) with values 70000..70000"),
])
def test_pixels_without_one_meaning_are_skipped_and_named_with_the_mode(tmp_path, caplog, image, reason):
    root = tmp_path / "flat"
    root.mkdir()
    for i in range(30):
        uniform(root / f"{i:02d}.png", (i, i, i), (32, 32))
    image.save(root / "wide.png", format="TIFF")
    with caplog.at_level(logging.WARNING):
        train, _ = read_folder(root, None)
    assert len(train) == 30 and f"wide.png (image {reason}" in " ".join(caplog.messages)


def test_a_cache_that_cannot_be_written_costs_a_warning_not_the_folder(tmp_path, caplog, image_folder):
    """The cache write raised VaeganError, which the folder's fallback (made for OSError) never caught."""
    image_folder(tmp_path / "data")
    not_a_folder = tmp_path / "cache"
    not_a_folder.write_bytes(b"a user's file")
    with caplog.at_level(logging.WARNING):
        train, _ = read_folder(tmp_path / "data", not_a_folder)
    assert len(train) == 18 and not_a_folder.read_bytes() == b"a user's file"
    assert any(m.startswith("could not cache the decoded images") for m in caplog.messages)


def test_an_image_rewritten_with_its_old_size_and_time_is_decoded_again(tmp_path):
    """The cache is keyed by the files' content: cp -p or rsync -t keep size and mtime, not the pixels."""
    (tmp_path / "data").mkdir()
    image = tmp_path / "data" / "a.bmp"  # uncompressed: the same size whatever the pixels
    uniform(image, (10, 10, 10), (32, 32))
    info = image.stat()
    first, _ = read_folder(tmp_path / "data", tmp_path / "cache")
    uniform(image, (200, 10, 10), (32, 32))
    assert image.stat().st_size == info.st_size
    os.utime(image, ns=(info.st_atime_ns, info.st_mtime_ns))
    second, _ = read_folder(tmp_path / "data", tmp_path / "cache")
    assert first.images[0, 0, 0, 0] == 10 and second.images[0, 0, 0, 0] == 200
