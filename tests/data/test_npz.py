import io
import logging
import re
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from vaegan.config import DataConfig
from vaegan.data import load_split
from vaegan.data.folder import read_folder
from vaegan.data.npz import read_npz
from vaegan.errors import VaeganError


def pixels(n, channels_last=True, seed=0):
    x = np.random.default_rng(seed).integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
    return x.transpose(0, 2, 3, 1).copy() if channels_last else x


def save(path, **arrays):
    np.savez(path, **arrays)
    return path


def test_images_in_either_layout_with_labels_and_class_names(tmp_path):
    x = pixels(12, channels_last=False)
    path = save(tmp_path / "mine.npz", x=x.transpose(0, 2, 3, 1), y=np.arange(12) % 3,
                class_names=np.array(["cat", "dog", "fox"]))
    train, test = read_npz(path)
    assert test is None and train.class_names == ["cat", "dog", "fox"]
    assert torch.equal(train.images, torch.from_numpy(x)) and train.labels.tolist() == [0, 1, 2] * 4
    same, _ = read_npz(save(tmp_path / "chw.npz", x=x, y=np.arange(12) % 3))
    assert torch.equal(same.images, train.images) and same.class_names == ["0", "1", "2"]


def test_without_labels_the_dataset_is_unconditional_and_a_test_split_is_held_out(tmp_path):
    path = save(tmp_path / "flat.npz", x=pixels(40))
    cfg = DataConfig(name="npz", dir=str(path))
    train, test = (load_split(cfg, split, 0) for split in ("train", "test"))
    assert train.class_names == ["image"] and train.labels.unique().tolist() == [0]
    assert len(train) == 36 and len(test) == 4


def test_a_stored_test_split_is_used(tmp_path):
    path = save(tmp_path / "split.npz", x=pixels(10), y=np.arange(10) % 2, x_test=pixels(4, seed=1),
                y_test=np.array([1, 0, 1, 1]))
    train, test = read_npz(path)
    assert len(train) == 10 and len(test) == 4 and test.labels.tolist() == [1, 0, 1, 1]
    assert train.name == test.name


@pytest.mark.parametrize("arrays, message", [
    ({"x": pixels(4).astype(np.float32)}, "dtype float32; it must be uint8"),
    ({"x": pixels(4)[..., :2]}, r"shape \[4, 32, 32, 2\]; it must be RGB images"),
    ({"x": pixels(4)[:, :0]}, r"shape \[4, 0, 32, 3\]"),
    ({"x": pixels(4)[0]}, "shape"),
    ({"images": pixels(4)}, "no array named x"),
    ({"x": pixels(4), "y": np.array([0, 1, 2, 5]), "class_names": np.array(["a", "b", "c"])}, r"labels 0..5, outside 0..2"),
    ({"x": pixels(4), "y": np.array([0, 1, -1, 0])}, "outside"),
    ({"x": pixels(4), "y": np.array([0, 1])}, r"shape \[4\]"),
    ({"x": pixels(4), "y": np.array([0.0, 1, 0, 1])}, "integer labels"),
    ({"x": pixels(4), "y": np.arange(4) % 2, "x_test": pixels(2)}, "no y_test"),
    ({"x": pixels(4), "y_test": np.arange(2)}, "y_test without"),
    ({"x": pixels(4), "y": np.arange(4) % 2, "x_test": pixels(2), "y_test": np.array([0, 2])}, "y_test holds"),
])
def test_bad_arrays_are_refused_with_what_is_wrong(tmp_path, arrays, message):
    with pytest.raises(VaeganError, match=message):
        read_npz(save(tmp_path / "bad.npz", **arrays))


def test_object_arrays_and_other_files_are_refused_without_unpickling(tmp_path):
    path = tmp_path / "objects.npz"
    np.savez(path, x=pixels(2), class_names=np.array([{"a": 1}, None], dtype=object))
    with pytest.raises(VaeganError, match="object arrays are refused"):
        read_npz(path)
    (tmp_path / "text.npz").write_text("hello")
    with pytest.raises(VaeganError, match="not a readable .npz"):
        read_npz(tmp_path / "text.npz")
    with pytest.raises(VaeganError, match="is not a file"):
        read_npz(tmp_path / "missing.npz")


def zipped(path, **members):
    """A .npz written member by member, with whatever bytes each holds."""
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def npy_header(shape, descr="|u1"):
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": descr, "fortran_order": False, "shape": shape})
    return buffer.getvalue()


def with_central_directory_field(path, offset, value):
    """`path` with a 2-byte field of every central directory record set to `value` (8: flags, 10: method)."""
    data = bytearray(path.read_bytes())
    start = data.find(b"PK\x01\x02")
    while start >= 0:
        data[start + offset:start + offset + 2] = value.to_bytes(2, "little")
        start = data.find(b"PK\x01\x02", start + 1)
    path.write_bytes(bytes(data))
    return path


def npy(array):
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


@pytest.mark.parametrize("members, patch, message", [
    ({"x.npy": b"not an array at all"}, None, "member x.npy cannot be read (the magic string is not correct"),
    ({"x": pixels(2).tobytes()}, None, "member x cannot be read"),  # raw bytes, not .npy
    ({"x.npy": npy(pixels(2))}, (8, 1), "member x.npy cannot be read (File 'x.npy' is encrypted"),
    ({"x.npy": npy(pixels(2))}, (10, 99), "member x.npy cannot be read (That compression method is not supported"),
    ({"x.npy": npy_header((10 ** 9, 32, 32, 3)) + bytes(100)}, None,
     "member x.npy declares shape [1000000000, 32, 32, 3] of uint8 (3,072,000,000,000 bytes) but holds 100 bytes"),
])
def test_a_member_that_cannot_be_read_is_named_in_one_error(tmp_path, members, patch, message):
    path = zipped(tmp_path / "mine.npz", **members)
    if patch:
        with_central_directory_field(path, *patch)
    with pytest.raises(VaeganError, match=f"^{re.escape(f'{path}: {message}')}"):
        read_npz(path)


def test_class_names_must_be_text_and_utf_8_bytes_are_read_as_text(tmp_path):
    path = save(tmp_path / "bytes.npz", x=pixels(2), y=np.array([0, 1]), class_names=np.array([b"caf\xc3\xa9", b"b"]))
    assert read_npz(path)[0].class_names == ["café", "b"]
    path = save(tmp_path / "bad.npz", x=pixels(2), y=np.array([0, 1]), class_names=np.array([b"\xff\xfe", b"b"]))
    with pytest.raises(VaeganError, match="member class_names holds bytes that are not UTF-8"):
        read_npz(path)


def test_images_of_another_size_are_resized_as_a_folder_of_the_same_images_is(tmp_path, caplog):
    x = np.random.default_rng(0).integers(0, 256, (3, 48, 64, 3), dtype=np.uint8)
    folder = tmp_path / "flat"
    folder.mkdir()
    for i, image in enumerate(x):
        Image.fromarray(image).save(folder / f"{i}.png")
    with caplog.at_level(logging.WARNING):
        train, _ = read_npz(save(tmp_path / "big.npz", x=x))
    assert "resized 3 images of x in" in caplog.text and "from 48x64 to 32x32" in caplog.text
    assert torch.equal(train.images, read_folder(folder, None)[0].images)
    chw, _ = read_npz(save(tmp_path / "chw.npz", x=x.transpose(0, 3, 1, 2)))
    assert torch.equal(chw.images, train.images)


def test_32x32_images_are_used_bit_for_bit_without_a_warning(tmp_path, caplog):
    x = pixels(5)
    with caplog.at_level(logging.WARNING):
        train, _ = read_npz(save(tmp_path / "small.npz", x=x))
    assert torch.equal(train.images, torch.from_numpy(x.transpose(0, 3, 1, 2))) and "resized" not in caplog.text


def test_greyscale_arrays_become_three_equal_channels_as_a_folder_of_grey_files_does(tmp_path):
    grey = np.random.default_rng(0).integers(0, 256, (3, 40, 36), dtype=np.uint8)
    folder = tmp_path / "flat"
    folder.mkdir()
    for i, image in enumerate(grey):
        Image.fromarray(image).save(folder / f"{i}.png")  # mode L
    expected = read_folder(folder, None)[0].images
    for layout in (grey, grey[..., None], grey[:, None]):
        train, _ = read_npz(save(tmp_path / "grey.npz", x=layout))
        assert torch.equal(train.images, expected)
