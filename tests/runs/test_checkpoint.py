import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from vaegan.errors import VaeganError
from vaegan.runs import checkpoint as ckpt


def _payload(value: float = 1.0) -> dict:
    return {"model": {"w": torch.full((256, 256), value)}, "step": 3, "rng": ckpt.rng_state()}


def test_round_trip_with_weights_only(tmp_path):
    path = tmp_path / "last.pt"
    ckpt.write_checkpoint(path, _payload(2.0))
    loaded = ckpt.read_checkpoint(path)
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
    ckpt.write_checkpoint(path, _payload())
    state = ckpt.read_checkpoint(path)["rng"]
    ckpt.set_rng_state(state)
    a = torch.rand(2)
    ckpt.set_rng_state(state)
    assert torch.equal(a, torch.rand(2))


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(VaeganError, match="no checkpoint file at"):
        ckpt.read_checkpoint(tmp_path / "nope.pt")


def test_corrupted_checkpoint_is_a_clear_error(tmp_path):
    path = tmp_path / "last.pt"
    ckpt.write_checkpoint(path, _payload())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(VaeganError, match="corrupt or truncated"):
        ckpt.read_checkpoint(path)
    path.write_bytes(b"garbage" * 100)
    with pytest.raises(VaeganError, match="corrupt or truncated"):
        ckpt.read_checkpoint(path)


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_a_file_that_needs_arbitrary_code_is_refused(tmp_path):
    path = tmp_path / "last.pt"
    torch.save({"format": ckpt.FORMAT, "x": Evil()}, path)
    with pytest.raises(VaeganError, match="refusing to load"):
        ckpt.read_checkpoint(path)


def test_foreign_file_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, path)
    with pytest.raises(VaeganError, match="not a vaegan checkpoint"):
        ckpt.read_checkpoint(path)


WRITER = textwrap.dedent("""
    import sys, torch
    from vaegan.runs import checkpoint as ckpt
    i = 0
    while True:
        i += 1
        ckpt.write_checkpoint(sys.argv[1], {"model": {"w": torch.full((1024, 1024), float(i))}, "step": i})
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
    loaded = ckpt.read_checkpoint(path)
    assert torch.all(loaded["model"]["w"] == loaded["step"])


def test_flipped_bytes_inside_a_weight_tensor_are_caught_by_the_checksum(tmp_path):
    """torch.load itself loads such a file silently with changed weights (torch's zip reader checks no CRC)."""
    import random

    path = tmp_path / "last.pt"
    ckpt.write_checkpoint(path, _payload(0.5))
    clean = path.read_bytes()
    marker = torch.full((4,), 0.5).numpy().tobytes()
    start = clean.index(marker * 8)  # inside the weight tensor's bytes
    rng = random.Random(0)
    for trial in range(50):
        data = bytearray(clean)
        for offset in rng.sample(range(start, start + 4096), 16):
            data[offset] ^= 0xFF
        path.write_bytes(bytes(data))
        with pytest.raises(VaeganError, match="checksum|corrupt"):
            ckpt.read_checkpoint(path)


def test_refusing_a_hostile_file_never_passes_on_the_weights_only_false_advice(tmp_path):
    path = tmp_path / "last.pt"
    torch.save({"format": ckpt.FORMAT, "x": Evil()}, path)
    with pytest.raises(VaeganError) as refused:
        ckpt.read_checkpoint(path)
    message = str(refused.value)
    assert "weights_only=False" not in message and "will likely succeed" not in message
    assert "references posix.system" in message or "references os.system" in message


def test_a_checkpoint_without_the_keys_resuming_needs_is_refused_by_name(tmp_path):
    path = tmp_path / "last.pt"
    ckpt.write_checkpoint(path, {"model": {}})
    with pytest.raises(VaeganError, match="no config, step"):
        ckpt.read_checkpoint(path, required=ckpt.TRAINING_KEYS)


def test_a_missing_file_is_named_for_what_it_is(tmp_path):
    with pytest.raises(VaeganError, match="no classifier file at"):
        ckpt.read_checkpoint(tmp_path / "c.pt", what="classifier")


FULL_DISK = textwrap.dedent("""
    import resource, signal, sys, torch
    from vaegan.runs import checkpoint as ckpt
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG, as on a full disk
    resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))
    ckpt.write_checkpoint(sys.argv[1], {"model": {"w": torch.zeros(1024, 1024)}, "step": 2})
""")


def test_a_full_disk_while_writing_is_one_line_and_keeps_the_previous_checkpoint(tmp_path):
    path = tmp_path / "last.pt"
    ckpt.write_checkpoint(path, _payload(1.0))
    before = path.read_bytes()
    result = subprocess.run([sys.executable, "-c", FULL_DISK, str(path)], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode != 0 and "VaeganError" in result.stderr and "cannot write" in result.stderr
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_a_file_of_another_version_is_refused_by_number(tmp_path):
    """Version 1 (the payload without a checksum) predates the first release: it is refused, not read unverified."""
    path = tmp_path / "old.pt"
    torch.save({"format": ckpt.FORMAT, "version": 1, **_payload()}, path)
    with pytest.raises(VaeganError, match=r"has file version 1; this vaegan reads version 2"):
        ckpt.read_checkpoint(path)
