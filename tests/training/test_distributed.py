"""One run on two processes (gloo on the CPU, launched by torchrun): the ranks stay identical, the averaged
gradient equals the one-process gradient of the same global batch, and only rank 0 writes."""

import os
import subprocess
import sys
import textwrap

import pytest
import torch

from vaegan.experiment import train
from vaegan.runs.metrics import read_metrics

# BatchNorm-free, dropout-free, noise-free: each rank's half of the batch gives exactly half of the gradient sum
PLAIN = {"model.name": "vae", "model.batchnorm": False, "model.dropout": 0.0, "model.noise_scale": 0.0,
         "train.max_steps": 4, "train.ckpt_every": 2}


def torchrun(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})


def test_two_ranks_train_the_run_one_process_would(tmp_path, tiny, tiny_args):
    train(tiny(**PLAIN), tmp_path / "one")
    overrides = [*tiny_args, *(f"{k}={v}" for k, v in PLAIN.items())]
    result = torchrun("-m", "vaegan", "train", "--preset", "vae-cifar10", "--run-dir", str(tmp_path / "two"),
                      *overrides)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("done: step 4") == 1  # rank 0 alone reports
    one = torch.load(tmp_path / "one" / "model.pt", weights_only=True)
    two = torch.load(tmp_path / "two" / "model.pt", weights_only=True)
    assert all(torch.allclose(one[k], two[k], atol=1e-5, rtol=1e-4) for k in one)
    records = [r for r in read_metrics(tmp_path / "two" / "metrics.jsonl") if r["kind"] == "train"]
    assert [r["step"] for r in records] == [1, 2, 3, 4]  # one record per step: only rank 0 writes


RANKS_STATE = textwrap.dedent("""
    import sys, torch
    from vaegan.config import Config, apply_overrides
    from vaegan.data import load_dataset
    from vaegan.runs import RunDir
    from vaegan.training import Trainer
    from vaegan.training.distributed import join_from_environment, leave
    cfg = apply_overrides(Config(), dict(arg.split("=", 1) for arg in sys.argv[2:]))
    ranks = join_from_environment("cpu")
    trainer = Trainer(cfg, RunDir(sys.argv[1]), load_dataset("shapes10", "train"), ranks=ranks)
    trainer.fit()
    state = {**trainer.model.state_dict(), **{"ema." + k: v for k, v in trainer.ema.shadow.state_dict().items()}}
    torch.save(state, f"{sys.argv[1]}/rank{ranks.rank}.pt")
    leave()
""")


def test_ranks_hold_identical_weights_buffers_and_ema_after_steps_with_batchnorm_dropout_and_d(tmp_path,
                                                                                                tiny_args):
    script = tmp_path / "ranks.py"
    script.write_text(RANKS_STATE)
    overrides = [*tiny_args, "model.name=vaegan", "model.conditional=true", "model.dropout=0.3",
                 "train.ema_decay=0.9", "train.max_steps=5", "data.hflip=true"]
    result = torchrun(str(script), str(tmp_path / "run"), *overrides)
    assert result.returncode == 0, result.stderr[-3000:]
    first, second = (torch.load(tmp_path / "run" / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)


def test_resuming_with_another_number_of_processes_is_refused(tmp_path, tiny, capsys):
    from vaegan.cli import main

    result = torchrun("-m", "vaegan", "train", "--preset", "vae-cifar10", "--run-dir", str(tmp_path / "run"),
                      "data.name=shapes10", "model.channels=8", "model.latent_dim=8", "train.batch_size=16",
                      "train.max_steps=2", "train.eval_images=32", "train.device=cpu")
    assert result.returncode == 0, result.stderr[-3000:]
    assert main(["train", "--resume", str(tmp_path / "run"), "train.max_steps=3"]) == 2
    assert "trained by 2 process(es)" in capsys.readouterr().err


def test_two_rank_resume_is_bit_exact(tmp_path, tiny_args):
    common = [*tiny_args, "model.name=vaegan", "model.conditional=true", "model.dropout=0.3", "data.hflip=true",
              "train.ema_decay=0.9", "train.ckpt_every=2"]
    straight = torchrun("-m", "vaegan", "train", "--preset", "cvaegan-cifar10", "--run-dir",
                        str(tmp_path / "straight"), *common, "train.max_steps=5")
    assert straight.returncode == 0, straight.stderr[-3000:]
    first = torchrun("-m", "vaegan", "train", "--preset", "cvaegan-cifar10", "--run-dir", str(tmp_path / "legs"),
                     *common, "train.max_steps=3")
    assert first.returncode == 0, first.stderr[-3000:]
    second = torchrun("-m", "vaegan", "train", "--resume", str(tmp_path / "legs"), "train.max_steps=5")
    assert second.returncode == 0, second.stderr[-3000:]
    a = torch.load(tmp_path / "straight" / "model.pt", weights_only=True)
    b = torch.load(tmp_path / "legs" / "model.pt", weights_only=True)
    assert [k for k in a if not torch.equal(a[k], b[k])] == []  # the names of any tensors that differ


FAILING_RANK = textwrap.dedent("""
    import sys
    from vaegan.config import Config, apply_overrides
    from vaegan.data import load_dataset
    from vaegan.errors import VaeganError
    from vaegan.runs import RunDir
    from vaegan.training import Trainer
    from vaegan.training.distributed import join_from_environment, leave
    cfg = apply_overrides(Config(), dict(arg.split("=", 1) for arg in sys.argv[2:]))
    ranks = join_from_environment("cpu")
    trainer = Trainer(cfg, RunDir(sys.argv[1]), load_dataset("shapes10", "train"), ranks=ranks)
    if ranks.rank == 1:
        raise VaeganError("rank 1 broke on purpose")
    try:
        trainer.fit()
    except BaseException:
        leave(finished=False)
        raise
""")


def test_a_rank_that_fails_ends_the_other_soon(tmp_path, tiny_args):
    script = tmp_path / "failing.py"
    script.write_text(FAILING_RANK)
    result = torchrun(str(script), str(tmp_path / "run"), *tiny_args, "train.max_steps=50", timeout=120)
    assert result.returncode != 0 and "rank 1 broke on purpose" in result.stderr
