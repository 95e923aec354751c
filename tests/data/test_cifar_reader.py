import pickle
import struct
import tracemalloc

import numpy as np
import pytest
import torch

from vaegan.data.cifar import read_cifar
from vaegan.data.safe_pickle import load_untrusted_pickle
from vaegan.errors import VaeganError

STYLES = ["py3", "bytes", "py2"]


@pytest.mark.parametrize("style", STYLES)
def test_cifar10_reads_both_splits(tmp_path, cifar_files, style):
    folder = cifar_files.folder(tmp_path, "cifar10", style, rows=4)
    train, test = read_cifar("cifar10", folder, "train"), read_cifar("cifar10", folder, "test")
    assert train.images.shape == (20, 3, 32, 32) and train.images.dtype == torch.uint8
    assert train.labels.shape == (20,) and train.labels.dtype == torch.int64
    assert len(test) == 4 and test.class_names == [f"class{i}" for i in range(10)] and test.num_classes == 10
    assert train.coarse_labels is None and train.coarse_class_names is None
    first = pickle.loads((folder / "data_batch_1").read_bytes(), encoding="latin1")
    first = {(k.decode() if isinstance(k, bytes) else k): v for k, v in first.items()}
    assert np.array_equal(train.images[:4].numpy(), first["data"].reshape(4, 3, 32, 32))  # channel-major rows
    assert train.labels[:4].tolist() == first["labels"]


@pytest.mark.parametrize("style", STYLES)
def test_cifar100_reads_fine_and_coarse_labels(tmp_path, cifar_files, style):
    folder = cifar_files.folder(tmp_path, "cifar100", style, rows=5)
    train = read_cifar("cifar100", folder, "train")
    assert train.images.shape == (5, 3, 32, 32) and train.num_classes == 100
    assert train.class_names[7] == "fine7" and train.coarse_class_names[19] == "coarse19"
    assert train.coarse_labels.dtype == torch.int64 and int(train.coarse_labels.max()) < 20


def test_truncated_pickle_names_the_file(tmp_path, cifar_files):
    folder = cifar_files.folder(tmp_path, "cifar10")
    batch = folder / "test_batch"
    batch.write_bytes(batch.read_bytes()[:1000])
    with pytest.raises(VaeganError, match="test_batch.*truncated or corrupt"):
        read_cifar("cifar10", folder, "test")


def test_forbidden_global_is_refused_before_running(tmp_path, cifar_files):
    folder = cifar_files.folder(tmp_path, "cifar10")
    marker = tmp_path / "pwned"
    (folder / "test_batch").write_bytes(b"cos\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR.")
    with pytest.raises(VaeganError, match=r"test_batch.*os\.system"):
        read_cifar("cifar10", folder, "test")
    assert not marker.exists()


@pytest.mark.parametrize(("change", "message"), [
    ({"labels": [10, 0, 0, 0, 0, 0]}, r"values in \[0, 10\]"),
    ({"labels": [0, 1]}, "one label per image"),
    ({"data": np.zeros((6, 3072), np.float32)}, "uint8 array"),
])
def test_inconsistent_batch_is_rejected(tmp_path, cifar_files, change, message):
    folder = cifar_files.folder(tmp_path, "cifar10")
    batch = {"data": np.zeros((6, 3072), np.uint8), "labels": [0] * 6} | change
    cifar_files.dump(folder / "test_batch", batch, "py3")
    with pytest.raises(VaeganError, match=message):
        read_cifar("cifar10", folder, "test")


def test_missing_batch_file_is_named(tmp_path, cifar_files):
    folder = cifar_files.folder(tmp_path, "cifar10")
    (folder / "data_batch_3").unlink()
    with pytest.raises(VaeganError, match="cannot read .*data_batch_3"):
        read_cifar("cifar10", folder, "train")


def _corrupt(tmp_path, cifar_files, content: bytes):
    """A CIFAR-10 folder whose test batch is `content`."""
    folder = cifar_files.folder(tmp_path, "cifar10")
    (folder / "test_batch").write_bytes(content)
    return folder


# An array whose dtype gets, by BUILD, its state without two of its Nones: numpy takes -1 for the fields dict
_GARBLED_DTYPE = (b"cnumpy\ndtype\nX\x02\x00\x00\x00u1\x89\x88\x87R"  # dtype('u1', False, True)
                  b"(K\x03X\x01\x00\x00\x00|NJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb")
_ARRAY_WITH_GARBLED_DTYPE = (b"\x80\x02cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85C\x01b\x87R"
                             b"(K\x01K\x02\x85" + _GARBLED_DTYPE + b"\x89C\x02abtb.")


@pytest.mark.parametrize("content, cause", [
    # _codecs.encode is allowed (bytes written by Python 3 at protocol 2) but may name any codec
    (b"\x80\x02c_codecs\nencode\nX\x01\x00\x00\x00aX\x04\x00\x00\x00nope\x86R.", "LookupError"),
    (b"\x80\x02c__builtin__\nbytes\n\x8a\x08\x00\x00\x00\x00\x00\x00\x00\x10\x85R.", "MemoryError"),  # bytes(2**60)
    (_ARRAY_WITH_GARBLED_DTYPE, "unexpected state for numpy dtype"),  # crashed the interpreter
], ids=["unknown-codec", "absurd-size", "garbled-dtype-state"])
def test_what_allowed_globals_raise_on_garbage_is_corruption(tmp_path, cifar_files, content, cause):
    folder = _corrupt(tmp_path, cifar_files, content)
    with pytest.raises(VaeganError, match=f"test_batch is truncated or corrupt .*{cause}"):
        read_cifar("cifar10", folder, "test")


@pytest.mark.parametrize("protocol", [2, 5])
def test_arrays_of_either_byte_order_still_load(tmp_path, protocol):
    path = tmp_path / "batch"
    path.write_bytes(pickle.dumps({"a": np.arange(3, dtype=">i4"), "b": np.arange(2, dtype="<f8")}, protocol))
    loaded = load_untrusted_pickle(path)
    assert loaded["a"].tolist() == [0, 1, 2] and loaded["b"].tolist() == [0.0, 1.0]


@pytest.mark.parametrize("opcode, length", [
    (pickle.BINBYTES, struct.pack("<I", 2**32 - 1)), (pickle.BINUNICODE, struct.pack("<I", 2**32 - 1)),
    (pickle.BINSTRING, struct.pack("<i", 2**31 - 1)), (pickle.BINBYTES8, struct.pack("<Q", 2**40)),
    (pickle.BINUNICODE8, struct.pack("<Q", 2**40)), (pickle.BYTEARRAY8, struct.pack("<Q", 2**40)),
    (pickle.FRAME, struct.pack("<Q", 2**40)),
], ids=["BINBYTES", "BINUNICODE", "BINSTRING", "BINBYTES8", "BINUNICODE8", "BYTEARRAY8", "FRAME"])
def test_huge_claimed_length_fails_fast_without_allocating_it(tmp_path, cifar_files, opcode, length):
    folder = _corrupt(tmp_path, cifar_files, pickle.PROTO + b"\x05" + opcode + length + b"abc.")
    tracemalloc.start()
    try:
        with pytest.raises(VaeganError, match="test_batch is truncated or corrupt"):
            read_cifar("cifar10", folder, "test")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2**24  # the claim is checked against the file before anything allocates it
