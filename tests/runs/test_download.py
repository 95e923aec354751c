"""Downloads give up on a server that never answers, in one line, and leave no partial file behind."""

import socket
import threading
import time

import pytest

from vaegan.data.download import cifar_folder
from vaegan.errors import VaeganError
from vaegan.runs import download
from vaegan.runs.weights import WeightsFile


@pytest.fixture
def silent_server():
    """The URL of a local server that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)  # the kernel completes the connections; nothing ever reads or writes them
    yield f"http://127.0.0.1:{server.getsockname()[1]}/file"
    server.close()


def finishes(call, seconds: float = 20) -> BaseException | None:
    """What `call` raised, asserting it returned within `seconds` (a hanging download fails the test, not CI)."""
    outcome = []

    def run():
        try:
            call()
            outcome.append(None)
        except BaseException as err:  # handed to the test
            outcome.append(err)
    thread = threading.Thread(target=run, daemon=True)
    started = time.monotonic()
    thread.start()
    thread.join(seconds)
    assert outcome, f"still downloading after {time.monotonic() - started:.0f} s"
    return outcome[0]


def test_weights_and_cifar_downloads_give_up_on_a_silent_server(tmp_path, monkeypatch, silent_server):
    monkeypatch.setattr(download, "DOWNLOAD_TIMEOUT", 1)
    weights = WeightsFile(what="Test weights", name="net-0123abcd.pth", url=silent_server, sha256_prefix="0123abcd",
                          env_var="VAEGAN_TEST_WEIGHTS", config_key="loss.test_weights")
    err = finishes(lambda: weights.path(None, tmp_path / "cache"))
    assert isinstance(err, VaeganError) and "no answer from the server for 1 s" in str(err)
    err = finishes(lambda: cifar_folder("cifar10", tmp_path / "data", url=silent_server, md5="0" * 32))
    assert isinstance(err, VaeganError) and "no answer from the server for 1 s" in str(err)
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []  # no .part left


def test_ctrl_c_during_a_download_leaves_no_partial_file(tmp_path, monkeypatch):
    def interrupted(url, out, digest, description):
        out.write(b"half of it")
        raise KeyboardInterrupt
    monkeypatch.setattr("vaegan.runs.weights.stream_url", interrupted)
    weights = WeightsFile(what="Test weights", name="net-0123abcd.pth", url="http://127.0.0.1:9/net.pth",
                          sha256_prefix="0123abcd", env_var="VAEGAN_TEST_WEIGHTS", config_key="loss.test_weights")
    with pytest.raises(KeyboardInterrupt):
        weights.path(None, tmp_path)
    assert list(tmp_path.iterdir()) == []
