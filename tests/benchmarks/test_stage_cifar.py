"""benchmarks/stage_cifar.py: CIFAR sheets split into calls a borrowed machine takes, rebuilt whole there."""

import json
import subprocess

import pytest


@pytest.fixture(scope="module")
def stage_cifar(benchmark_script):
    return benchmark_script("stage_cifar")


def test_the_sheets_travel_in_parts_under_the_limit_and_come_together_whole(stage_cifar, tmp_path, monkeypatch):
    sheets = tmp_path / "shared"
    for dataset, count in (("cifar10", 7), ("cifar100", 5)):
        (sheets / "cifar" / dataset).mkdir(parents=True)
        for i in range(count):
            (sheets / "cifar" / dataset / f"train-{i:03d}.webp").write_bytes(bytes([i]) * (300 << 10))
    (sheets / "cifar" / "MANIFEST.json").write_text("{}")
    (sheets / "unpack_cifar.py").write_text("print('unpacked')\n")
    monkeypatch.setattr(stage_cifar, "ROOT", tmp_path)
    calls = stage_cifar.stage(sheets, tmp_path / ".stage", 1, 1.0)
    assert len(calls) == 4  # 12 sheets of 300 KiB, three to a part of 1 MiB
    assert calls == json.loads((tmp_path / ".stage" / "calls.json").read_text())
    for number, call in enumerate(calls, start=1):
        assert call["carry"] == [f".stage/part-{number}"] and len(call["command"]) <= 2000
        assert sum(p.stat().st_size for p in (tmp_path / call["carry"][0]).rglob("*") if p.is_file()) <= 1 << 20
        assert ("gpu_check.py $OUT --only reproduce" in call["command"]) == (number == len(calls))
    machine = tmp_path / "machine"
    machine.mkdir()
    (machine / ".stage").symlink_to(tmp_path / ".stage")
    for call in calls:  # each call's copy, as the warm machine runs it (the last one's reproduction left out)
        subprocess.run(call["command"].split(" && python3")[0], shell=True, cwd=machine, check=True,
                       capture_output=True)
    rebuilt = sorted(p.relative_to(machine / ".cifar-sheets") for p in (machine / ".cifar-sheets").rglob("*")
                     if p.is_file())
    assert rebuilt == sorted(p.relative_to(sheets) for p in sheets.rglob("*") if p.is_file())


def test_a_stage_folder_outside_the_repository_is_refused(stage_cifar, tmp_path):
    with pytest.raises(SystemExit, match="outside the repository"):
        stage_cifar.stage(tmp_path, tmp_path / ".stage", 56, 1.0)


def test_a_stage_folder_holding_other_files_or_missing_sheets_is_refused_and_left_as_it_was(stage_cifar, tmp_path,
                                                                                            monkeypatch):
    monkeypatch.setattr(stage_cifar, "ROOT", tmp_path)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    with pytest.raises(SystemExit, match="not found"):
        stage_cifar.stage(tmp_path / "nowhere", tmp_path / ".stage", 56, 1.0)
    with pytest.raises(SystemExit, match="did not write"):
        stage_cifar.stage(tmp_path / "nowhere", mine, 56, 1.0)
    assert (mine / "notes.txt").read_text() == "mine"
