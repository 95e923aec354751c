"""Published weight files: where they are looked for, the checked download, and reading them safely."""

import hashlib
import os
from pathlib import Path

import pytest
import torch

from vaegan.errors import VaeganError
from vaegan.runs import weights
from vaegan.runs.weights import WeightsFile, read_state_dict

FILE = WeightsFile(what="Test weights", name="net-0123abcd.pth", url="https://example.invalid/net-0123abcd.pth",
                   sha256_prefix="0123abcd", env_var="VAEGAN_TEST_WEIGHTS", config_key="loss.test_weights")


def test_the_path_is_the_configured_file_then_the_environment_then_the_cache(tmp_path, monkeypatch):
    given = tmp_path / "given.pth"
    given.write_bytes(b"x")
    monkeypatch.setenv(FILE.env_var, str(given))
    assert FILE.path(None, tmp_path / "cache") == given
    monkeypatch.delenv(FILE.env_var)
    with pytest.raises(VaeganError, match=f"{FILE.env_var}=.*{FILE.name}.*loss.test_weights"):
        FILE.path(str(tmp_path / "absent.pth"), tmp_path / "cache")
    with pytest.raises(VaeganError, match="download is off"):
        FILE.path(None, tmp_path / "cache", download=False)
    assert FILE.present(None, tmp_path / "cache") is None
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / FILE.name).write_bytes(b"x")
    assert FILE.present(None, tmp_path / "cache") == tmp_path / "cache" / FILE.name


def test_a_failed_or_corrupt_download_leaves_nothing_behind(tmp_path, monkeypatch):
    def offline(url, filename):
        raise OSError("network unreachable")
    monkeypatch.setattr(weights.urllib.request, "urlretrieve", offline)
    with pytest.raises(VaeganError, match="download impossible"):
        FILE.path(None, tmp_path)

    def corrupt(url, filename):
        Path(filename).write_bytes(b"not the weights")
    monkeypatch.setattr(weights.urllib.request, "urlretrieve", corrupt)
    with pytest.raises(VaeganError, match="sha256"):
        FILE.path(None, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_a_download_writes_a_temp_file_of_its_own_and_removes_those_of_killed_ones(tmp_path, monkeypatch, dead_pid):
    stale = tmp_path / f"{FILE.name}.{dead_pid}.k3j4h5g6.part"
    live = tmp_path / f"{FILE.name}.{os.getpid()}.zz99yy88.part"  # another download of this process
    stale.write_bytes(b"half")
    live.write_bytes(b"half")
    written = []

    def fetch(url, filename):
        written.append(Path(filename).name)
        Path(filename).write_bytes(b"weights")
    monkeypatch.setattr(weights.urllib.request, "urlretrieve", fetch)
    checked = WeightsFile(**{**FILE.__dict__, "sha256_prefix": hashlib.sha256(b"weights").hexdigest()[:8]})
    assert checked.path(None, tmp_path) == tmp_path / FILE.name
    assert written[0].startswith(f"{FILE.name}.{os.getpid()}.") and written[0] != live.name
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([FILE.name, live.name])


@pytest.mark.parametrize("content", [torch.zeros(3), [torch.zeros(3)], None, {1: torch.zeros(3)}],
                         ids=["tensor", "list", "none", "dict-with-int-key"])
def test_a_file_that_is_not_a_dict_of_named_tensors_is_one_error(tmp_path, content):
    path = tmp_path / "weights.pth"
    torch.save(content, path)
    with pytest.raises(VaeganError, match=f"{path} is not the test weights file"):
        read_state_dict(path, "test weights")
    path.write_bytes(b"garbage")
    with pytest.raises(VaeganError, match="cannot read test weights"):
        read_state_dict(path, "test weights")
