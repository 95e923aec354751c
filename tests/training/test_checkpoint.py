import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from vaegan.errors import VaeganError
from vaegan.training import checkpoint as ckpt


def _payload(value: float = 1.0) -> dict:
    return ckpt.make_payload(model={"w": torch.full((256, 256), value)}, step=3, rng=ckpt.rng_state())


def test_round_trip_with_weights_only(tmp_path):
    path = tmp_path / "last.pt"
    ckpt.save_atomic(_payload(2.0), path)
    loaded = ckpt.load_checkpoint(path)
    assert loaded["step"] == 3 and torch.equal(loaded["model"]["w"], torch.full((256, 256), 2.0))
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temporary file left


def test_rng_state_round_trip_restores_every_generator():
    import random

    import numpy as np
    state = ckpt.rng_state()
    expected = (torch.rand(3), random.random(), np.random.rand())
    torch.rand(5), random.random(), np.random.rand()
    ckpt.set_rng_state(state)
    again = (torch.rand(3), random.random(), np.random.rand())
    assert torch.equal(expected[0], again[0]) and expected[1:] == again[1:]


def test_rng_state_survives_a_weights_only_round_trip(tmp_path):
    path = tmp_path / "last.pt"
    ckpt.save_atomic(_payload(), path)
    state = ckpt.load_checkpoint(path)["rng"]
    ckpt.set_rng_state(state)
    a = torch.rand(2)
    ckpt.set_rng_state(state)
    assert torch.equal(a, torch.rand(2))


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(VaeganError, match="no checkpoint at"):
        ckpt.load_checkpoint(tmp_path / "nope.pt")


def test_corrupted_checkpoint_is_a_clear_error(tmp_path):
    path = tmp_path / "last.pt"
    ckpt.save_atomic(_payload(), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(VaeganError, match="corrupt or truncated"):
        ckpt.load_checkpoint(path)
    path.write_bytes(b"garbage" * 100)
    with pytest.raises(VaeganError, match="corrupt or truncated"):
        ckpt.load_checkpoint(path)


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_a_file_that_needs_arbitrary_code_is_refused(tmp_path):
    path = tmp_path / "last.pt"
    torch.save({"format": ckpt.FORMAT, "x": Evil()}, path)
    with pytest.raises(VaeganError, match="refusing to load"):
        ckpt.load_checkpoint(path)


def test_foreign_file_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, path)
    with pytest.raises(VaeganError, match="not a vaegan checkpoint"):
        ckpt.load_checkpoint(path)


WRITER = textwrap.dedent("""
    import sys, torch
    from vaegan.training import checkpoint as ckpt
    i = 0
    while True:
        i += 1
        ckpt.save_atomic(ckpt.make_payload(model={"w": torch.full((1024, 1024), float(i))}, step=i), sys.argv[1])
        print(i, flush=True)
""")


@pytest.mark.parametrize("delay", [0.05, 0.13, 0.31])
def test_sigkill_while_writing_leaves_a_loadable_checkpoint(tmp_path, delay):
    path = tmp_path / "last.pt"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        proc.stdout.readline()  # one complete checkpoint exists; the writer is busy writing the next ones
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        proc.kill()
    loaded = ckpt.load_checkpoint(path)
    assert torch.all(loaded["model"]["w"] == loaded["step"])
