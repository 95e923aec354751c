"""RunDir: which folders a new run may use, what an overwrite removes, the lock, and stale temporary files."""

import os
import subprocess
import sys
import textwrap

import pytest

from vaegan.errors import VaeganError
from vaegan.runs import OutputFolder, RunDir
from vaegan.runs.files import atomic_write, remove_stale_temp_files
from vaegan.runs.metrics import MetricsLog, read_metrics

def _fake_run(folder):
    """The files a finished run leaves, without training one."""
    rundir = RunDir(folder)
    for path in (rundir.config, rundir.metrics_file, rundir.checkpoint, rundir.model, rundir.summary,
                 rundir.sample_grid("final"), rundir.recon_grid("epoch_001"), rundir.figure("curves.png")):
        atomic_write(path, b"x")
    (folder / ".vaegan.lock").write_text("")
    return rundir


def test_a_folder_holding_a_users_file_is_never_replaced(tmp_path):
    rundir = _fake_run(tmp_path / "run")
    (tmp_path / "run" / "notes.txt").write_text("mine")
    with pytest.raises(VaeganError, match=r"files vaegan did not write \(notes.txt\)"):
        rundir.check_new_run(overwrite=True)
    (tmp_path / "run" / "samples" / "mine.txt").write_text("mine")
    with pytest.raises(VaeganError, match="samples/mine.txt"):
        rundir.check_new_run(overwrite=True)


def test_a_users_own_metrics_and_summary_are_not_a_run(tmp_path):
    (tmp_path / "mine").mkdir()
    for name in ("metrics.jsonl", "summary.json"):
        (tmp_path / "mine" / name).write_text("{}")
    with pytest.raises(VaeganError, match="no vaegan run"):
        RunDir(tmp_path / "mine").check_new_run(overwrite=True)


def test_overwrite_removes_exactly_the_run_files(tmp_path):
    rundir = _fake_run(tmp_path / "run")
    rundir.check_new_run(overwrite=True)
    rundir.remove_outputs()
    assert [p.name for p in (tmp_path / "run").iterdir()] == [".vaegan.lock"]


def test_overwrite_removes_the_trackers_files_wandbs_folders_whole_but_no_link_target(tmp_path):
    rundir = _fake_run(tmp_path / "run")
    atomic_write(rundir.trackers, b"{}")
    offline = rundir.wandb / "offline-run-20260101_000000-abc"
    atomic_write(offline / "logs" / "debug.log", b"x")
    (rundir.wandb / "debug.log").symlink_to(offline / "logs" / "debug.log")
    (tmp_path / "elsewhere").mkdir()
    (rundir.wandb / "latest-run").symlink_to(tmp_path / "elsewhere")
    rundir.check_new_run(overwrite=True)
    rundir.remove_outputs()
    assert [p.name for p in (tmp_path / "run").iterdir()] == [".vaegan.lock"] and (tmp_path / "elsewhere").is_dir()


def test_a_users_file_in_wandbs_folder_is_never_replaced(tmp_path):
    rundir = _fake_run(tmp_path / "run")
    atomic_write(rundir.wandb / "offline-run-20260101_000000-abc" / "run-abc.wandb", b"x")
    (rundir.wandb / "notes.txt").write_text("mine")
    with pytest.raises(VaeganError, match=r"files vaegan did not write \(wandb/notes.txt\)"):
        rundir.check_new_run(overwrite=True)


@pytest.mark.parametrize("where", ["cwd", "parent", "home"])
def test_the_current_folder_its_parents_and_home_are_never_replaced(tmp_path, monkeypatch, where):
    run = _fake_run(tmp_path / "run").path
    inside = run / "figures"
    monkeypatch.chdir(run if where == "cwd" else inside)
    if where == "home":
        monkeypatch.chdir(tmp_path)
        monkeypatch.setenv("HOME", str(run))
    with pytest.raises(VaeganError, match="current folder, a parent of it, or the home folder"):
        RunDir(run).check_new_run(overwrite=True)
    assert (run / "model.pt").is_file()


def test_a_file_as_run_dir_is_refused(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(VaeganError, match="is a file, not a run folder"):
        RunDir(tmp_path / "file").check_new_run(overwrite=False)


HOLDER = textwrap.dedent("""
    import sys, time
    from vaegan.runs import RunDir
    with RunDir(sys.argv[1]).lock("vaegan train"):
        print("locked", flush=True)
        time.sleep(60)
""")


def test_a_second_process_gets_one_line_naming_the_holder_and_a_killed_holder_frees_the_run(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path / "run")], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(VaeganError, match=rf"in use by process {holder.pid} on .*\(vaegan train, since"):
            with RunDir(tmp_path / "run").lock("vaegan train"):
                pass
    finally:
        holder.kill()
        holder.wait()
    with RunDir(tmp_path / "run").lock("vaegan train"):  # kill -9 released the OS lock
        pass


def test_the_lock_clears_temporary_files_of_dead_writers_only(tmp_path, dead_pid):
    rundir = _fake_run(tmp_path / "run")
    stale = rundir.checkpoint.with_name(f".last.pt.{dead_pid}.tmp")
    live = rundir.checkpoint.with_name(f".last.pt.{os.getpid()}.tmp")
    stale_json = rundir.path / f".summary.json.{dead_pid}.tmp"
    stale_png = rundir.sample_grid("epoch_001").with_name(f".epoch_001.png.{dead_pid}.tmp")
    for path in (stale, live, stale_json, stale_png):
        path.write_bytes(b"partial")
    with rundir.lock("test"):
        pass
    assert not stale.exists() and not stale_json.exists() and not stale_png.exists() and live.exists()
    assert remove_stale_temp_files(tmp_path / "absent") == []


def test_status_says_whether_the_final_outputs_belong_to_the_checkpoint(tmp_path):
    rundir = RunDir(tmp_path)
    assert rundir.outputs_status(None).complete is False
    rundir.write_json(rundir.summary, {"step": 5})
    atomic_write(rundir.model, b"x")
    assert rundir.outputs_status(5).complete and rundir.outputs_status(5).finished(5)
    assert not rundir.outputs_status(5).finished(6) and not rundir.outputs_status(7).complete
    rundir.summary.write_text('{"step": 5')  # cut short
    assert not rundir.outputs_status(5).complete


def test_metrics_shorter_than_the_checkpoint_offset_are_never_padded(tmp_path):
    log = MetricsLog(tmp_path / "metrics.jsonl")
    log.write(kind="train", step=1)
    offset = log.offset()
    (tmp_path / "metrics.jsonl").unlink()
    assert log.truncate(offset) is False
    log.write(kind="train", step=2)
    data = (tmp_path / "metrics.jsonl").read_bytes()
    assert b"\x00" not in data and [r["step"] for r in read_metrics(tmp_path / "metrics.jsonl")] == [2]


def test_lines_that_are_not_utf8_or_not_objects_are_skipped(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_bytes(b'{"step": 1}\n\xff\xfe{"step": 2}\n[1, 2]\n{"step": 3}\n{"st')
    assert [r["step"] for r in read_metrics(path)] == [1, 3]


def test_an_output_folder_overwrites_only_its_own_unchanged_files(tmp_path):
    folder = OutputFolder(tmp_path)
    mine, theirs = tmp_path / "table.md", tmp_path / "notes.md"
    theirs.write_text("the user's")
    folder.write(mine, "vaegan's 1")
    folder.write(mine, "vaegan's 2")  # a rerun updates vaegan's own file
    assert mine.read_text() == "vaegan's 2"
    with pytest.raises(VaeganError, match="notes.md was not written by vaegan.*move it away or choose another --out"):
        folder.write(theirs, "vaegan's")
    mine.write_text("edited by the user")
    with pytest.raises(VaeganError, match="table.md was not written by vaegan, or was changed since"):
        folder.write(mine, "vaegan's 3")
    assert theirs.read_text() == "the user's" and mine.read_text() == "edited by the user"
    (tmp_path / "link.md").symlink_to(theirs)
    with pytest.raises(VaeganError, match="link.md"):
        folder.check(tmp_path / "link.md")


def test_an_output_folder_that_is_a_file_is_refused_before_anything_is_written(tmp_path):
    (tmp_path / "out").write_text("the user's file")
    with pytest.raises(VaeganError, match="out is a file, not a folder: choose another --out"):
        OutputFolder(tmp_path / "out").check(tmp_path / "out" / "table.md")
    assert (tmp_path / "out").read_text() == "the user's file"
