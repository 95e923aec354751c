"""Published weight files: where they are looked for, the checked download, and reading them safely."""

import hashlib
import os

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


def served(tmp_path, content: bytes) -> WeightsFile:
    """FILE as published at a file:// URL holding `content`, with the sha256 of `content` as its own."""
    published = tmp_path / "published" / FILE.name
    published.parent.mkdir()
    published.write_bytes(content)
    return WeightsFile(**{**FILE.__dict__, "url": published.as_uri(),
                          "sha256_prefix": hashlib.sha256(content).hexdigest()[:8]})


def test_a_failed_or_corrupt_download_leaves_nothing_behind(tmp_path):
    cache = tmp_path / "cache"
    offline = WeightsFile(**{**FILE.__dict__, "url": (tmp_path / "absent.pth").as_uri()})
    with pytest.raises(VaeganError, match="download impossible"):
        offline.path(None, cache)
    corrupt = WeightsFile(**{**served(tmp_path, b"not the weights").__dict__, "sha256_prefix": FILE.sha256_prefix})
    with pytest.raises(VaeganError, match="sha256"):
        corrupt.path(None, cache)
    assert list(cache.iterdir()) == []


def test_a_download_writes_a_temp_file_of_its_own_and_removes_those_of_killed_ones(tmp_path, monkeypatch, dead_pid):
    cache = tmp_path / "cache"
    cache.mkdir()
    stale = cache / f"{FILE.name}.{dead_pid}.k3j4h5g6.part"
    live = cache / f"{FILE.name}.{os.getpid()}.zz99yy88.part"  # another download of this process
    stale.write_bytes(b"half")
    live.write_bytes(b"half")
    written = []
    stream = weights.stream_url

    def fetch(url, out, digest, description):
        written.extend(p.name for p in cache.glob("*.part") if p != live)  # the stale one is gone already
        stream(url, out, digest, description)
    monkeypatch.setattr(weights, "stream_url", fetch)
    checked = served(tmp_path, b"weights")
    assert checked.path(None, cache) == cache / FILE.name and (cache / FILE.name).read_bytes() == b"weights"
    assert len(written) == 1 and written[0].startswith(f"{FILE.name}.{os.getpid()}.")
    assert sorted(p.name for p in cache.iterdir()) == sorted([FILE.name, live.name])


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
