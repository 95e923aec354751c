"""One run on two processes (gloo on the CPU, launched by torchrun): the ranks stay identical, the averaged
gradient equals the one-process gradient of the same global batch, test metrics cover the whole test set, only
rank 0 writes, a kill -9 resumes exactly, and a failure or Ctrl-C ends every rank with one message."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from vaegan.experiment import train
from vaegan.runs.metrics import read_metrics

# BatchNorm-free, dropout-free, noise-free: each rank's half of the batch gives exactly half of the gradient sum.
# 33 test images: the ranks measure shares of 16 and 17.
PLAIN = {"model.name": "vae", "model.batchnorm": False, "model.dropout": 0.0, "model.noise_scale": 0.0,
         "train.max_steps": 4, "train.ckpt_every": 2, "train.eval_images": 33}
# A conditional VAE-GAN with everything that could let the ranks drift apart
DRIFTING = ["model.name=vaegan", "model.conditional=true", "model.dropout=0.3", "data.hflip=true",
            "train.ema_decay=0.9"]
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}  # 2 ranks on 2 cores


def torchrun(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([*TORCHRUN, *args], capture_output=True, text=True, timeout=timeout, env=ENV)


def start_torchrun(*args: str) -> subprocess.Popen:
    """torchrun in a process group of its own, as a terminal runs it (its ranks run in sessions of their own:
    torchrun passes Ctrl-C on to them)."""
    return subprocess.Popen([*TORCHRUN, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=ENV, start_new_session=True)


def wait_for(path, process: subprocess.Popen, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert process.poll() is None, process.communicate()[1][-3000:]
        assert time.monotonic() < deadline, f"no {path} after {seconds} s"
        time.sleep(0.02)


@pytest.mark.slow  # torchrun launches
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
    written = [sorted(str(f.relative_to(tmp_path / run)) for f in (tmp_path / run).rglob("*")) for run in ("one", "two")]
    assert written[0] == written[1]  # rank 1 wrote nothing of its own
    records = [r for r in read_metrics(tmp_path / "two" / "metrics.jsonl") if r["kind"] == "train"]
    assert [r["step"] for r in records] == [1, 2, 3, 4]  # one record per step: only rank 0 writes
    summaries = [json.loads((tmp_path / run / "summary.json").read_text()) for run in ("one", "two")]
    assert summaries[1]["world_size"] == 2 and summaries[1]["test"]["images"] == 33
    for name, value in summaries[0]["test"].items():  # the whole test set, measured in two shares
        assert summaries[1]["test"][name] == pytest.approx(value, rel=1e-4), name


LEAVING = textwrap.dedent("""
    import os, torch
    from vaegan.training.distributed import average, join_from_environment, leave
    threads = lambda: len(os.listdir("/proc/self/task"))
    before = threads()
    ranks = join_from_environment("cpu")
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])  # the first optimiser imports torch._dynamo
    average(torch.ones(1), ranks.world_size)
    leave()
    assert threads() == before, f"{threads() - before} threads of the process group outlive it"
""")


@pytest.mark.slow  # torchrun launches
def test_leaving_ends_the_process_groups_threads_before_the_interpreter_exits(tmp_path):
    """A group still alive at exit lets a gloo worker release tensors during interpreter shutdown, which
    aborted 3 of 99 two-rank runs under load."""
    script = tmp_path / "leaving.py"
    script.write_text(LEAVING)
    result = torchrun(str(script))
    assert result.returncode == 0, result.stderr[-3000:]


RANKS_STATE = textwrap.dedent("""
    import os, sys, torch
    import vaegan.training.step as step
    from vaegan.config import Config, apply_overrides
    from vaegan.data import load_dataset
    from vaegan.runs import RunDir
    from vaegan.training import Trainer
    from vaegan.training.distributed import join_from_environment, leave
    cfg = apply_overrides(Config(), dict(arg.split("=", 1) for arg in sys.argv[2:]))
    ranks = join_from_environment("cpu")
    poisoned_call = int(os.environ.get("POISON_CALL_ON_RANK_1", "0"))
    if ranks.rank == 1 and poisoned_call:  # a non-finite loss whose gradient is finite, on this rank alone
        original, calls = step.autoencoder_terms, []
        def poisoned(*args):
            loss = original(*args)
            calls.append(1)
            return loss + loss.detach() * float("nan") if len(calls) == poisoned_call else loss
        step.autoencoder_terms = poisoned
    trainer = Trainer(cfg, RunDir(sys.argv[1]), load_dataset("shapes10", "train"), ranks=ranks)
    trainer.fit()
    state = {**trainer.model.state_dict(), **{"ema." + k: v for k, v in trainer.ema.shadow.state_dict().items()},
             "skipped": torch.tensor(trainer.nonfinite_steps)}
    torch.save(state, f"{sys.argv[1]}/rank{ranks.rank}.pt")
    leave()
""")


@pytest.mark.slow  # torchrun launches
@pytest.mark.parametrize("poisoned_call", [0, 3])
def test_ranks_hold_identical_weights_buffers_and_ema_after_steps_with_batchnorm_dropout_and_d(
        tmp_path, tiny_args, poisoned_call):
    """With a non-finite loss on rank 1 alone at one step, both ranks skip that step together."""
    script = tmp_path / "ranks.py"
    script.write_text(RANKS_STATE)
    result = subprocess.run([*TORCHRUN, str(script), str(tmp_path / "run"), *tiny_args, *DRIFTING,
                             "train.max_steps=5"], capture_output=True, text=True, timeout=300,
                            env={**ENV, "POISON_CALL_ON_RANK_1": str(poisoned_call)})
    assert result.returncode == 0, result.stderr[-3000:]
    first, second = (torch.load(tmp_path / "run" / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert first.keys() == second.keys() and [k for k in first if not torch.equal(first[k], second[k])] == []
    assert first["skipped"].item() == (1 if poisoned_call else 0)


@pytest.mark.slow  # torchrun launches
def test_resuming_with_another_number_of_processes_is_refused(tmp_path, tiny_args, capsys):
    from vaegan.cli import main

    result = torchrun("-m", "vaegan", "train", "--preset", "vae-cifar10", "--run-dir", str(tmp_path / "run"),
                      *tiny_args)
    assert result.returncode == 0, result.stderr[-3000:]
    assert main(["train", "--resume", str(tmp_path / "run"), "train.max_steps=3"]) == 2
    assert "trained by 2 process(es)" in capsys.readouterr().err


@pytest.mark.slow  # torchrun launches
def test_a_two_rank_run_killed_with_sigkill_resumes_to_the_same_weights(tmp_path, tiny_args):
    common = ["--preset", "cvaegan-cifar10", *tiny_args, *DRIFTING, "train.ckpt_every=2", "train.max_steps=80"]
    straight = torchrun("-m", "vaegan", "train", "--run-dir", str(tmp_path / "straight"), *common)
    assert straight.returncode == 0, straight.stderr[-3000:]
    killed = start_torchrun("-m", "vaegan", "train", "--run-dir", str(tmp_path / "killed"), *common)
    wait_for(tmp_path / "killed" / "checkpoints" / "last.pt", killed)
    subprocess.run(["pkill", "-KILL", "-P", str(killed.pid)])  # the ranks: each runs in a session of its own
    killed.kill()
    killed.communicate()
    assert not (tmp_path / "killed" / "model.pt").exists()  # it died before the end
    resumed = torchrun("-m", "vaegan", "train", "--resume", str(tmp_path / "killed"))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a = torch.load(tmp_path / "straight" / "model.pt", weights_only=True)
    b = torch.load(tmp_path / "killed" / "model.pt", weights_only=True)
    assert [k for k in a if not torch.equal(a[k], b[k])] == []  # the names of any tensors that differ


FAILING_RANK = textwrap.dedent("""
    import os, sys
    from vaegan.cli import main
    from vaegan.errors import VaeganError
    from vaegan.training import Trainer
    if os.environ["RANK"] == "1":
        def broken(self):
            raise VaeganError("rank 1 broke on purpose")
        Trainer.save_checkpoint = broken
    sys.exit(main(sys.argv[1:]))
""")


@pytest.mark.slow  # torchrun launches
def test_a_rank_that_fails_ends_the_other_with_one_message(tmp_path, tiny_args):
    script = tmp_path / "failing.py"
    script.write_text(FAILING_RANK)
    started = time.monotonic()
    result = torchrun(str(script), "train", "--preset", "cvaegan-cifar10", "--run-dir", str(tmp_path / "run"),
                      *tiny_args, "train.max_steps=500", "train.ckpt_every=2", timeout=120)
    assert result.returncode != 0 and time.monotonic() - started < 90
    assert result.stderr.count("vaegan: error:") == 1, result.stderr[-3000:]
    assert "vaegan: error: rank 1 broke on purpose" in result.stderr


@pytest.mark.slow  # torchrun launches
def test_a_refusal_on_rank_0_ends_the_run_with_one_message_and_keeps_the_folder(tmp_path, tiny_args):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("my notes")
    result = torchrun("-m", "vaegan", "train", "--preset", "vae-cifar10", "--run-dir", str(folder), *tiny_args,
                      timeout=120)
    assert result.returncode != 0
    assert result.stderr.count("vaegan: error:") == 1 and "notes.txt" in result.stderr, result.stderr[-3000:]
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt"]


@pytest.mark.slow  # torchrun launches
def test_ctrl_c_stops_every_rank_with_one_message_and_the_run_resumes(tmp_path, tiny_args):
    run = tmp_path / "run"
    common = [*tiny_args, "train.max_steps=3000", "train.ckpt_every=2"]
    process = start_torchrun("-m", "vaegan", "train", "--preset", "vae-cifar10", "--run-dir", str(run), *common)
    wait_for(run / "checkpoints" / "last.pt", process)
    os.killpg(process.pid, signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode != 0
    assert stderr.count("vaegan: interrupted") == 1 and "vaegan: error" not in stderr, stderr[-3000:]
    resumed = torchrun("-m", "vaegan", "train", "--resume", str(run), "train.max_steps=4")
    assert resumed.returncode == 0, resumed.stderr[-3000:]


def test_a_global_batch_that_does_not_divide_by_the_processes_is_refused(tmp_path, tiny):
    from vaegan.data import load_dataset
    from vaegan.errors import VaeganError
    from vaegan.runs import RunDir
    from vaegan.training import Trainer
    from vaegan.training.distributed import Ranks

    with pytest.raises(VaeganError, match="train.batch_size=16 is the global batch and must divide by the 3"):
        Trainer(tiny(), RunDir(tmp_path / "run"), load_dataset("shapes10", "train"), ranks=Ranks(0, 3))
