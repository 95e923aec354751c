"""Training runs as users start them: folders that must not be touched, two processes, kills, full and
read-only disks, and what a run records of its speed settings."""

import errno
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from vaegan.cli import main
from vaegan.errors import VaeganError
from vaegan.evaluation.run import load_run
from vaegan.experiment import resume, train
from vaegan.runs import checkpoint as ckpt
from vaegan.runs import files as run_files
from vaegan.runs import metrics as run_metrics
from vaegan.runs import rundir as run_folder
from vaegan.runs.metrics import read_metrics
from vaegan.speed import settings as speed_settings


def one_error_line(code: int, err: str) -> str:
    assert code == 2 and "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vaegan: error: "), err
    return lines[0]


@pytest.fixture(scope="module")
def finished(tmp_path_factory, tiny):
    """A finished 2-step vaegan run (conditional, so it has every output)."""
    run = tmp_path_factory.mktemp("finished") / "run"
    train(tiny(**{"model.name": "vaegan", "model.conditional": True}), run)
    return run


# ---- folders that are not vaegan's to delete ---------------------------------------------------------------

def test_demo_and_overwrite_never_delete_a_users_file(tmp_path, capsys, tiny, tiny_args):
    run = tmp_path / "run"
    train(tiny(), run)
    (run / "notes.txt").write_text("my notes")
    capsys.readouterr()
    for argv in (["demo", "--run-dir", str(run), *tiny_args],
                 ["train", "--preset", "vae-cifar10", "--run-dir", str(run), "--overwrite", *tiny_args]):
        line = one_error_line(main(argv), capsys.readouterr().err)
        assert "notes.txt" in line and "did not write" in line
    assert (run / "notes.txt").read_text() == "my notes" and (run / "model.pt").is_file()


def test_overwrite_of_the_current_folder_is_refused(tmp_path, monkeypatch, capsys, tiny, tiny_args):
    run = tmp_path / "run"
    train(tiny(), run)
    monkeypatch.chdir(run)
    before = sorted(p.name for p in run.iterdir())
    capsys.readouterr()
    line = one_error_line(main(["train", "--preset", "vae-cifar10", "--run-dir", ".", "--overwrite", *tiny_args]),
                          capsys.readouterr().err)
    assert "current folder" in line and sorted(p.name for p in run.iterdir()) == before


def test_a_folder_with_a_users_metrics_and_summary_is_not_overwritten(tmp_path, capsys, tiny_args):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "metrics.jsonl").write_text('{"mine": 1}\n')
    (mine / "summary.json").write_text('{"mine": 2}')
    line = one_error_line(main(["train", "--preset", "vae-cifar10", "--run-dir", str(mine), *tiny_args]),
                          capsys.readouterr().err)
    assert "no vaegan run" in line
    assert (mine / "metrics.jsonl").read_text() == '{"mine": 1}\n' and (mine / "summary.json").read_text() == '{"mine": 2}'


def test_resuming_a_folder_without_a_run_writes_nothing_there(tmp_path, capsys):
    (tmp_path / "docs").mkdir()
    assert "holds no checkpoint" in one_error_line(main(["train", "--resume", str(tmp_path / "docs")]),
                                                   capsys.readouterr().err)
    assert list((tmp_path / "docs").iterdir()) == [] and not (tmp_path / "typo").exists()
    assert main(["train", "--resume", str(tmp_path / "typo")]) == 2 and not (tmp_path / "typo").exists()


def test_a_file_named_as_run_dir_is_one_line(tmp_path, capsys, tiny_args):
    (tmp_path / "afile").write_text("x")
    for argv in (["train", "--preset", "vae-cifar10", "--run-dir", str(tmp_path / "afile"), *tiny_args],
                 ["train", "--resume", str(tmp_path / "afile")], ["sample", str(tmp_path / "afile")]):
        assert "is a file" in one_error_line(main(argv), capsys.readouterr().err)
    assert (tmp_path / "afile").read_text() == "x"


# ---- two processes, kills ----------------------------------------------------------------------------------

HOLD = textwrap.dedent("""
    import sys, time
    from vaegan.runs import RunDir
    with RunDir(sys.argv[1]).lock("vaegan train"):
        print("locked", flush=True)
        time.sleep(120)
""")


@pytest.mark.slow  # vaegan processes started beside a lock holder
def test_a_second_trainer_on_the_same_run_gets_one_line_naming_the_holder(finished, tmp_path, tiny, tiny_args):
    run = tmp_path / "run"
    train(tiny(**{"train.max_steps": 2}), run)
    before = run.joinpath("metrics.jsonl").read_bytes()
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(run)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        for argv in (["train", "--resume", str(run), "train.max_steps=4"],
                     ["train", "--preset", "vae-cifar10", "--run-dir", str(run), "--overwrite", *tiny_args]):
            result = subprocess.run([sys.executable, "-m", "vaegan", *argv], capture_output=True, text=True,
                                    timeout=300)
            assert f"is in use by process {holder.pid}" in one_error_line(result.returncode, result.stderr)
    finally:
        holder.kill()
        holder.wait()
    assert run.joinpath("metrics.jsonl").read_bytes() == before


def test_a_run_killed_after_its_final_checkpoint_is_completed_by_resume(tmp_path, tiny):
    run = tmp_path / "run"
    train(tiny(**{"train.max_steps": 3}), run)
    checkpoint = run / "checkpoints" / "last.pt"
    stamp = checkpoint.stat().st_mtime_ns
    (run / "summary.json").unlink()  # as if killed between the final checkpoint and its outputs
    (run / "model.pt").unlink()
    summary = resume(run)
    assert summary["step"] == 3 and (run / "model.pt").is_file()
    assert json.loads((run / "summary.json").read_text())["step"] == 3
    assert checkpoint.stat().st_mtime_ns == stamp  # nothing was trained again
    tests = [r["step"] for r in read_metrics(run / "metrics.jsonl") if r["kind"] == "test"]
    assert tests == [0, 3]
    with pytest.raises(VaeganError, match="already finished"):
        resume(run)


def test_resume_after_metrics_were_deleted_appends_and_cleans_stale_temporary_files(tmp_path, dead_pid, tiny):
    run = tmp_path / "run"
    train(tiny(**{"train.max_steps": 2}), run)
    (run / "metrics.jsonl").unlink()
    stale = run / "checkpoints" / f".last.pt.{dead_pid}.tmp"
    stale.write_bytes(b"half a checkpoint")
    resume(run, {"train.max_steps": 3})
    data = (run / "metrics.jsonl").read_bytes()
    assert b"\x00" not in data and [r["step"] for r in read_metrics(run / "metrics.jsonl")] == [3, 3]
    assert not stale.exists()


def test_a_changed_data_folder_is_not_a_changed_experiment(tmp_path, tiny):
    run = tmp_path / "run"
    train(tiny(**{"train.max_steps": 2}), run)
    assert resume(run, {"train.max_steps": 3, "data.dir": str(tmp_path / "moved"), "data.download": False})[
        "step"] == 3


# ---- full and read-only disks ------------------------------------------------------------------------------

def test_a_full_disk_during_training_is_one_line(tmp_path, tiny_args):
    def limit_file_size():
        import resource
        import signal
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG, like ENOSPC
        resource.setrlimit(resource.RLIMIT_FSIZE, (150_000, 150_000))
    argv = ["train", "--preset", "vae-cifar10", "--run-dir", str(tmp_path / "run"),
            *[a for a in tiny_args if not a.startswith("model.channels")], "model.channels=32"]
    result = subprocess.run([sys.executable, "-m", "vaegan", *argv], capture_output=True, text=True, timeout=300,
                            preexec_fn=limit_file_size)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    error = [line for line in result.stderr.splitlines() if not line.startswith("step ")]  # progress lines
    assert len(error) == 1 and error[0].startswith("vaegan: error: cannot write ")
    assert "disk full" in error[0] or "no space left" in error[0]
    assert list((tmp_path / "run").rglob("*.tmp")) == []


@pytest.fixture
def read_only(monkeypatch):
    """Make writes under a folder fail as on a read-only filesystem (as root, chmod would not stop them)."""
    def install(folder):
        folder = str(folder)

        def refused(path) -> bool:
            return os.path.abspath(os.fspath(path)).startswith(folder)

        real_open, real_os_open, real_mkdir = open, os.open, os.mkdir

        def guarded_open(path, mode="r", *args, **kwargs):
            if refused(path) and any(flag in mode for flag in "wax+"):
                raise OSError(errno.EROFS, "Read-only file system", os.fspath(path))
            return real_open(path, mode, *args, **kwargs)

        def guarded_os_open(path, flags, *args, **kwargs):
            if refused(path) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
                raise OSError(errno.EROFS, "Read-only file system", os.fspath(path))
            return real_os_open(path, flags, *args, **kwargs)

        def guarded_mkdir(path, *args, **kwargs):
            if refused(path) and not os.path.isdir(path):
                raise OSError(errno.EROFS, "Read-only file system", os.fspath(path))
            return real_mkdir(path, *args, **kwargs)
        for module in (run_files, run_metrics):
            monkeypatch.setattr(module, "open", guarded_open, raising=False)
        monkeypatch.setattr(run_folder.os, "open", guarded_os_open)
        monkeypatch.setattr(os, "mkdir", guarded_mkdir)
    return install


@pytest.mark.parametrize("command", [["train", "--resume", "{run}", "train.max_steps=3"], ["sample", "{run}"],
                                     ["evaluate", "{run}", "--metrics", "recon", "--n", "16"], ["report", "{run}"],
                                     ["train", "--preset", "vae-cifar10", "--run-dir", "{run}/new", "{tiny}"]])
def test_a_read_only_run_folder_is_one_line_and_loses_nothing(finished, read_only, command, capsys, tiny_args):
    before = {p: p.stat().st_mtime_ns for p in finished.rglob("*") if p.is_file()}
    read_only(finished)
    argv = [arg.replace("{run}", str(finished)) for arg in command if arg != "{tiny}"]
    argv += tiny_args if "{tiny}" in command else []
    if argv[0] != "train":
        argv += ["--device", "cpu"]
    line = one_error_line(main(argv), capsys.readouterr().err)
    assert "Read-only file system" in line
    assert {p: p.stat().st_mtime_ns for p in finished.rglob("*") if p.is_file()} == before


# ---- broken files a run may hold ---------------------------------------------------------------------------

def test_a_truncated_summary_in_report_and_bad_metric_lines_in_curves(finished, tmp_path, capsys, tiny):
    run = tmp_path / "copy"
    train(tiny(**{"train.max_steps": 2}), run)
    (run / "summary.json").write_text('{"step": 2, "te')
    capsys.readouterr()
    line = one_error_line(main(["report", str(run), "--device", "cpu"]), capsys.readouterr().err)
    assert "summary.json is corrupt" in line and "--resume" in line
    with open(run / "metrics.jsonl", "ab") as f:
        f.write(b"\xff\xfe not utf-8\n")
    assert main(["curves", str(run)]) == 0


def test_a_checkpoint_without_config_or_step_is_one_line(tmp_path, capsys):
    path = tmp_path / "run" / "checkpoints" / "last.pt"
    ckpt.write_checkpoint(path, {"model": {}})
    for argv in (["train", "--resume", str(tmp_path / "run")], ["sample", str(tmp_path / "run"), "--device", "cpu"]):
        assert "it has no config" in one_error_line(main(argv), capsys.readouterr().err)


def test_divergence_before_the_first_checkpoint_does_not_claim_one(tmp_path, monkeypatch, tiny):
    original = torch.nn.Module.__call__

    def nan_losses(module, *args, **kwargs):
        out = original(module, *args, **kwargs)
        return out * float("nan") if module.__class__.__name__ == "Decoder" else out
    monkeypatch.setattr(torch.nn.Module, "__call__", nan_losses)
    with pytest.raises(VaeganError, match="no checkpoint had been written yet") as error:
        train(tiny(**{"train.max_steps": 10, "train.max_nonfinite": 2}), tmp_path / "run")
    assert "still holds" not in str(error.value)


# ---- speed settings recorded in the run --------------------------------------------------------------------

def test_train_speed_eager_is_recorded_and_a_resume_keeps_the_recorded_settings(tmp_path, tiny):
    summary = train(tiny(**{"train.speed": "eager"}), tmp_path / "eager")
    assert summary["speed"]["request"]["speed"] == "eager" and summary["speed"]["describe"] == "eager"
    run = tmp_path / "auto"
    summary = train(tiny(), run)
    assert summary["speed"]["settings"]["channels_last"] is True  # the CPU default
    payload = ckpt.read_checkpoint(run / "checkpoints" / "last.pt")
    payload["speed"]["settings"]["fast_dropout"] = not payload["speed"]["settings"]["fast_dropout"]
    recorded = payload["speed"]["settings"]["fast_dropout"]
    ckpt.write_checkpoint(run / "checkpoints" / "last.pt", payload)
    resumed = resume(run, {"train.max_steps": 3})
    assert resumed["speed"]["settings"]["fast_dropout"] is recorded
    changed = resume(run, {"train.max_steps": 4, "train.threads": 1})  # a changed request is resolved anew
    assert changed["speed"]["settings"]["fast_dropout"] is not recorded
    assert changed["speed"]["settings"]["num_threads"] == 1


def test_opening_a_run_changes_no_process_wide_setting(finished, monkeypatch):
    def forbidden(*args):
        raise AssertionError("load_run changed a process-wide setting")
    monkeypatch.setattr(speed_settings, "configure_process", forbidden)
    monkeypatch.setattr(speed_settings, "set_host_memory_reuse", forbidden)
    threads = torch.get_num_threads()
    run = load_run(finished, "cpu")
    assert torch.get_num_threads() == threads and run.model.num_classes == 10


def test_a_run_on_a_training_subset_records_it_and_cannot_resume_with_another(tmp_path, tiny):
    run = tmp_path / "run"
    summary = train(tiny(**{"data.train_subset": 40, "train.batch_size": 8}), run)
    assert summary["train_images"] == 40
    assert "train_subset: 40" in (run / "config.yaml").read_text()
    with pytest.raises(VaeganError, match="data.train_subset"):
        resume(run, {"data.train_subset": 80, "train.max_steps": 3})


# ---- the data a run trains on ------------------------------------------------------------------------------

def write_npz(path, images: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    np.savez(path, x=rng.integers(0, 256, (images, 32, 32, 3), dtype=np.uint8), y=np.arange(images) % 2)
    return path


def test_a_resume_on_changed_data_is_refused_and_one_on_the_same_data_continues(tmp_path, tiny):
    data, run = write_npz(tmp_path / "own.npz", 40), tmp_path / "run"
    train(tiny(**{"data.name": "npz", "data.dir": str(data)}), run)
    write_npz(data, 50)  # the user added images
    with pytest.raises(VaeganError) as refused:
        resume(run, {"train.max_steps": 3})
    assert str(refused.value).startswith(f"cannot resume {run}: its training data changed since it started (36 "
                                         "images then, 46 now; fingerprint ")
    assert "train a new run, or restore the data" in str(refused.value)
    write_npz(data, 40)  # restored: the same images (a new file time does not matter)
    assert resume(run, {"train.max_steps": 3})["step"] == 3


def test_a_checkpoint_written_before_runs_recorded_their_data_resumes(tmp_path, tiny):
    run = tmp_path / "run"
    train(tiny(), run)
    checkpoint = run / "checkpoints" / "last.pt"
    payload = ckpt.read_checkpoint(checkpoint)
    del payload["data"]
    ckpt.write_checkpoint(checkpoint, payload)
    assert resume(run, {"train.max_steps": 3})["step"] == 3
    payload = ckpt.read_checkpoint(checkpoint)
    payload["data"]["train"] = "??"
    ckpt.write_checkpoint(checkpoint, payload)
    with pytest.raises(VaeganError, match="malformed record of the run's training data"):
        resume(run, {"train.max_steps": 4})
