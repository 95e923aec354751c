import hashlib
import io
import os
import tarfile

import pytest

from vaegan.data import load_dataset
from vaegan.data.download import cifar_folder
from vaegan.errors import VaeganError


def _md5(path):
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.fixture
def cifar10_archive(tmp_path, cifar_files):
    """A tar.gz laid out like the official one, built from a tiny folder outside the data dir."""
    folder = cifar_files.folder(tmp_path / "source", "cifar10", rows=3)
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname=folder.name)
    return archive


def test_download_verifies_extracts_and_loads(tmp_path, cifar10_archive):
    data_dir = tmp_path / "data"
    folder = cifar_folder("cifar10", data_dir, url=cifar10_archive.as_uri(), md5=_md5(cifar10_archive))
    assert folder == data_dir / "cifar-10-batches-py" and folder.is_dir()
    assert sorted(p.name for p in data_dir.iterdir()) == ["cifar-10-batches-py"]  # no temp leftovers
    assert len(load_dataset("cifar10", "test", str(data_dir), download=False)) == 3


def test_a_download_removes_what_killed_downloads_left_and_nothing_else(tmp_path, cifar10_archive, dead_pid):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    stale = [data_dir / f".cifar-10-batches-py.{dead_pid}.k3j4h5g6.tar.gz.part",
             data_dir / f".cifar-10-batches-py.{dead_pid}.a1b2c3d4.extracting"]
    stale[0].write_bytes(b"half an archive")
    (stale[1] / "cifar-10-batches-py").mkdir(parents=True)
    kept = [data_dir / f".cifar-10-batches-py.{os.getpid()}.zz99yy88.tar.gz.part",  # a live download's
            data_dir / f".cifar-10-batches-py.{dead_pid}.backup", data_dir / f".cifar-100-python.{dead_pid}.x.notes"]
    for path in kept:
        path.write_bytes(b"keep")
    cifar_folder("cifar10", data_dir, url=cifar10_archive.as_uri(), md5=_md5(cifar10_archive))
    assert sorted(p.name for p in data_dir.iterdir()) == sorted(["cifar-10-batches-py", *(p.name for p in kept)])


def test_wrong_md5_leaves_nothing(tmp_path, cifar10_archive):
    data_dir = tmp_path / "data"
    with pytest.raises(VaeganError, match="md5"):
        cifar_folder("cifar10", data_dir, url=cifar10_archive.as_uri(), md5="0" * 32)
    assert list(data_dir.iterdir()) == []


def test_member_escaping_the_target_is_refused(tmp_path, cifar_files):
    archive = cifar_files.tar_gz(tmp_path / "evil.tar.gz", {"cifar-10-batches-py/x": b"ok", "../evil": b"boom"})
    data_dir = tmp_path / "data"
    with pytest.raises(VaeganError, match="unsafe member"):
        cifar_folder("cifar10", data_dir, url=archive.as_uri(), md5=_md5(archive))
    assert list(data_dir.iterdir()) == [] and not (tmp_path / "evil").exists()


def test_link_pointing_outside_is_refused(tmp_path):
    archive = tmp_path / "link.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        link = tarfile.TarInfo("cifar-10-batches-py/escape")
        link.type, link.linkname = tarfile.SYMTYPE, "../../../etc"
        tar.addfile(link, io.BytesIO())
    with pytest.raises(VaeganError, match="unsafe member"):
        cifar_folder("cifar10", tmp_path / "data", url=archive.as_uri(), md5=_md5(archive))


def test_unreachable_url_explains_the_way_out(tmp_path):
    data_dir = tmp_path / "data"
    with pytest.raises(VaeganError) as caught:
        cifar_folder("cifar100", data_dir, url="file:///nonexistent/cifar.tar.gz")
    message = str(caught.value)
    assert "\n" not in message and str(data_dir / "cifar-100-python") in message
    assert "VAEGAN_DATA" in message and "shapes10" in message
    assert list(data_dir.iterdir()) == []


def test_missing_folder_without_download_is_an_error(tmp_path):
    with pytest.raises(VaeganError, match="downloading is switched off.*VAEGAN_DATA"):
        load_dataset("cifar10", "train", str(tmp_path), download=False)
