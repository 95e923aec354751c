"""wandb (offline, its files read back) and MLflow (a local file store, read through its client) get what
metrics.jsonl holds, the config and the summary; a resume continues the same tracker runs; each member of a fused
group logs to runs of its own. Nothing leaves the machine."""

import json
import struct
import zlib
from pathlib import Path

import pytest
import yaml

from vaegan.cli import main
from vaegan.config import flatten
from vaegan.errors import VaeganError
from vaegan.experiment import train_fused
from vaegan.runs import RunDir
from vaegan.tracking import open_trackers

RECORD_KEYS = {"kind", "step", "epoch", "time"}


@pytest.fixture(scope="module")
def offline(tmp_path_factory):
    """wandb offline (any server it tried would be a closed local port), MLflow in a file store: one folder."""
    folder = tmp_path_factory.mktemp("trackers")
    env = {"WANDB_MODE": "offline", "WANDB_SILENT": "true", "WANDB_BASE_URL": "http://127.0.0.1:9",
           "WANDB_DIR": str(folder), "WANDB_CONFIG_DIR": str(folder / "wandb-config"),
           "WANDB_CACHE_DIR": str(folder / "wandb-cache"), "WANDB_DATA_DIR": str(folder / "wandb-data"),
           "WANDB_DISABLE_GIT": "true", "MLFLOW_TRACKING_URI": (folder / "mlruns").as_uri(),
           "MLFLOW_ALLOW_FILE_STORE": "true", "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        yield folder


@pytest.fixture(scope="module")
def resumed(offline, tiny_args):
    """A run trained 3 steps with train.log_to=[wandb,mlflow], then resumed to 5, with an epoch end every 2 steps:
    (its RunDir, the tracker ids after each leg, metrics.jsonl after each leg)."""
    rundir = RunDir(offline / "run")
    assert main(["train", "--preset", "cvaegan-cifar100", "--run-dir", str(rundir.path), *tiny_args,
                 "data.train_subset=32", "train.epoch_work_steps=1", "train.max_steps=3", "train.log_to=[wandb,mlflow]"]) == 0
    ids, records = [json.loads(rundir.trackers.read_text())], [rundir.records()]
    assert main(["train", "--resume", str(rundir.path), "train.max_steps=5"]) == 0
    ids.append(json.loads(rundir.trackers.read_text()))
    records.append(rundir.records())
    wait_for_wandb_files()
    return rundir, ids, records


def wait_for_wandb_files() -> None:
    """`run.finish()` returns before wandb-core has written the run's .wandb file: its last 32 KiB block lands when
    the service closes the run's stream, a moment later (4 of 40 offline runs read right after `finish` held only
    the header here, with two busy cores). A process's exit waits for that; a test reading the files in the same
    process waits with `wandb.teardown()`."""
    import wandb

    wandb.teardown()


def wandb_records(path: Path):
    """The protobuf Records of a .wandb file. wandb 0.31 has no Python reader (wandb-core writes and reads it), so
    this follows its format: a 7-byte header (":W&B", magic, version), then LevelDB-log chunks in 32 KiB blocks,
    each with a 7-byte header (CRC-32 of type and data, length, type: full, first, middle, last)."""
    from wandb.proto import wandb_internal_pb2

    block, data = 32768, path.read_bytes()
    assert data[:4] == b":W&B"
    position, pending = 7, b""
    while position + 7 <= len(data):
        left = block - position % block
        crc, length, kind = struct.unpack("<IHB", data[position:position + 7])
        if left < 7 or (kind == 0 and length == 0):  # the zero padding at a block's end
            position += left
            continue
        chunk, position = data[position + 7:position + 7 + length], position + 7 + length
        assert zlib.crc32(chunk, zlib.crc32(bytes([kind]))) == crc
        pending = chunk if kind in (1, 2) else pending + chunk
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            yield record


def wandb_runs(rundir: RunDir) -> dict[str, list[Path]]:
    """run id -> the .wandb files of its legs, in order (one offline run folder per leg)."""
    runs: dict[str, list[Path]] = {}
    for path in sorted(rundir.wandb.glob("offline-run-*/run-*.wandb")):
        runs.setdefault(path.stem.removeprefix("run-"), []).append(path)
    return runs


def wandb_sent(files: list[Path]) -> tuple[dict[int, dict], dict[str, list[int]], dict[str, object]]:
    """What the legs' files hold: step -> the scalars logged at it (`kind/name` keys), grid -> the steps it was
    logged at, and the summary."""
    sent: dict[int, dict] = {}
    grids: dict[str, list[int]] = {}
    summary: dict[str, object] = {}
    for path in files:
        for record in wandb_records(path):
            kind = record.WhichOneof("record_type")
            items = record.history.item if kind == "history" else record.summary.update if kind == "summary" else []
            values = {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in items}
            if kind == "history":
                sent.setdefault(values["_step"], {}).update(
                    {k: v for k, v in values.items() if k.split("/")[0] in ("train", "test")})
                for grid in {k.split("/")[0] for k in values} & {"samples", "recon"}:
                    grids.setdefault(grid, []).append(values["_step"])
            else:
                summary.update(values)
    return sent, grids, summary


def expected_scalars(*legs: list[dict]) -> dict[int, dict[str, float]]:
    """step -> the train and test numbers metrics.jsonl held at the end of each leg (a resume drops the first
    leg's final test record, written after its last checkpoint; the trackers keep it)."""
    expected: dict[int, dict] = {}
    for records in legs:
        for r in records:
            if r["kind"] in ("train", "test"):
                expected.setdefault(r["step"], {}).update({
                    f"{r['kind']}/{k}": v for k, v in r.items()
                    if k not in RECORD_KEYS and isinstance(v, (int, float)) and not isinstance(v, bool)})
    return expected


def mlflow_scalars(run_id: str, keys) -> dict[int, dict[str, float]]:
    from mlflow.tracking import MlflowClient

    client, scalars = MlflowClient(), {}
    for key in keys:
        for metric in client.get_metric_history(run_id, key):
            scalars.setdefault(metric.step, {})[key] = metric.value
    return scalars


def test_a_resume_continues_the_same_wandb_and_mlflow_runs(resumed):
    rundir, ids, _ = resumed
    assert ids[0] == ids[1] and set(ids[0]) == {"wandb", "mlflow"}
    runs = wandb_runs(rundir)
    assert list(runs) == [ids[0]["wandb"]] and len(runs[ids[0]["wandb"]]) == 2  # two legs, one wandb run id


def test_wandb_gets_every_train_and_test_record_and_the_summary(resumed):
    rundir, ids, records = resumed
    expected = expected_scalars(*records)
    assert sorted(expected) == [0, 1, 2, 3, 4, 5] and all("test/mse_per_pixel" in expected[s] for s in (0, 2, 3, 4))
    sent, grids, summary = wandb_sent(wandb_runs(rundir)[ids[0]["wandb"]])
    assert sent == expected
    assert grids == {"samples": [2, 3, 4, 5], "recon": [2, 3, 4, 5]}  # each epoch's and each leg's final
    final = json.loads(rundir.summary.read_text())
    assert summary["step"] == final["step"] == 5
    assert summary["test/mse_per_pixel"] == final["test"]["mse_per_pixel"]


def test_mlflow_gets_every_train_and_test_record_the_config_the_grids_and_the_summary(resumed, tmp_path):
    from mlflow.tracking import MlflowClient

    rundir, ids, records = resumed
    expected = expected_scalars(*records)
    assert mlflow_scalars(ids[0]["mlflow"], {k for values in expected.values() for k in values}) == expected
    client = MlflowClient()
    run = client.get_run(ids[0]["mlflow"])
    assert run.info.status == "FINISHED" and run.info.run_name == rundir.path.name
    assert client.get_experiment(run.info.experiment_id).name == "vaegan"
    started = {**flatten(yaml.safe_load(rundir.config.read_text()), "config.yaml"), "train.max_steps": 3}
    assert run.data.params == {key: str(value) for key, value in started.items()}  # the config it started with
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert artifacts == {"grids", rundir.summary.name}
    grids = {a.path for folder in ("grids/samples", "grids/recon") for a in client.list_artifacts(run.info.run_id,
                                                                                                   folder)}
    assert grids == {f"grids/{kind}/{name}.png" for kind in ("samples", "recon")
                     for name in ("epoch_001", "epoch_002", "final")}  # the final grid: the last leg's
    summary = client.download_artifacts(run.info.run_id, rundir.summary.name, str(tmp_path))
    assert json.loads(Path(summary).read_text()) == json.loads(rundir.summary.read_text())


def test_each_member_of_a_fused_group_logs_to_tracker_runs_of_its_own(offline, tiny):
    cfgs = [tiny(**{"train.seed": seed, "train.log_to": "[wandb,mlflow]"}) for seed in (0, 1)]
    rundirs = [RunDir(offline / f"member{k}") for k in range(2)]
    assert all(isinstance(outcome, dict) for outcome in train_fused(cfgs, [r.path for r in rundirs]))
    wait_for_wandb_files()
    ids = [json.loads(rundir.trackers.read_text()) for rundir in rundirs]
    assert ids[0]["wandb"] != ids[1]["wandb"] and ids[0]["mlflow"] != ids[1]["mlflow"]
    for rundir, own in zip(rundirs, ids):
        expected = expected_scalars(rundir.records())
        assert list(wandb_runs(rundir)) == [own["wandb"]]
        assert wandb_sent(wandb_runs(rundir)[own["wandb"]])[0] == expected
        assert mlflow_scalars(own["mlflow"], {k for values in expected.values() for k in values}) == expected


def test_a_tracker_run_a_resume_cannot_find_again_is_one_line_naming_the_file_of_ids(offline, tiny, tmp_path,
                                                                                    monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", (tmp_path / "another-store").as_uri())
    rundir = RunDir(tmp_path / "run")
    rundir.write_json(rundir.trackers, {"mlflow": "0123456789abcdef"})
    with pytest.raises(VaeganError, match=r"^mlflow could not start a run .*; the run continues mlflow run "
                                          r"0123456789abcdef \(named in .*trackers.json: delete that file"):
        open_trackers(tiny(**{"train.log_to": "[mlflow]"}), rundir, first_step=3)
