import pickle

import numpy as np
import pytest
import torch

from vaegan.data.cifar import read_cifar
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
