"""vaegan ablate: tables from a grid of tiny runs, resumption after a kill, and the seed statistics."""

import csv
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from vaegan.ablation.grids import Claim, Grid, load_grid, regularization_grid
from vaegan.ablation.runner import Cell
from vaegan.ablation.table import aggregate, claim_line, mean_std, write_tables
from vaegan.cli import main
from vaegan.errors import VaeganError
from vaegan.objectives.feature_networks import FORMAT as CLASSIFIER_FORMAT
from vaegan.objectives.feature_networks import VERSION as CLASSIFIER_VERSION
from vaegan.runs.checkpoint import read_checkpoint, write_checkpoint

GRID = """
base: vae-cifar10
overrides: {data.name: shapes10, model.channels: 8, model.latent_dim: 8, train.batch_size: 16,
            train.max_steps: 6, train.eval_images: 32, train.device: cpu}
variants:
  plain: {}
  beta4: {loss.beta: 4}
"""


def test_a_2x2_grid_writes_all_three_tables_with_the_right_rows_and_columns(tmp_path, capsys):
    (tmp_path / "grid.yaml").write_text(GRID)
    out = tmp_path / "out"
    assert main(["ablate", str(tmp_path / "grid.yaml"), "--seeds", "2", "--out", str(out), "--device", "cpu"]) == 0
    assert "budget: 6 steps of batch 16" in capsys.readouterr().out
    md = (out / "table.md").read_text()
    assert "| plain |" in md and "| beta4 |" in md and "test MSE/px" in md and "±" in md
    with open(out / "table.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["variant"] for r in rows] == ["plain", "beta4"]
    assert {"train_mse_mean", "test_mse_std", "gap_mean", "kl_mean", "loss_std_mean", "nonfinite_mean",
            "images_per_second_mean", "knn_mean"} <= rows[0].keys()
    page = (out / "table.html").read_text()
    assert page.count("<img") == 2 and all((out / p).is_file() for p in
                                           [s.split('"')[0] for s in page.split('src="')[1:]])
    for variant in ("plain", "beta4"):
        for seed in (0, 1):
            assert (out / variant / f"seed{seed}" / "summary.json").is_file()


@pytest.mark.slow  # an ablate process killed with SIGKILL, then run again
def test_a_killed_runner_resumes_without_retraining_finished_cells(tmp_path):
    grid = tmp_path / "grid.yaml"
    grid.write_text(GRID.replace("train.max_steps: 6", "train.max_steps: 30"))
    out = tmp_path / "out"
    command = [sys.executable, "-m", "vaegan", "ablate", str(grid), "--seeds", "2", "--out", str(out),
               "--device", "cpu"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first = out / "plain" / "seed0" / "ablation.json"
    deadline = time.time() + 240
    while not first.is_file() and time.time() < deadline and process.poll() is None:
        time.sleep(0.2)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert first.is_file(), "the first cell never finished"
    finished_stamp = (out / "plain" / "seed0" / "summary.json").stat().st_mtime_ns
    assert not (out / "table.md").exists()
    assert subprocess.run(command, capture_output=True, timeout=600).returncode == 0
    assert (out / "plain" / "seed0" / "summary.json").stat().st_mtime_ns == finished_stamp  # not retrained
    assert (out / "table.md").is_file() and (out / "beta4" / "seed1" / "ablation.json").is_file()


def test_a_classifier_given_later_adds_fcd_and_class_consistency_without_retraining(tmp_path, capsys):
    grid = tmp_path / "grid.yaml"
    grid.write_text(GRID.replace("beta4: {loss.beta: 4}", "conditional: {model.conditional: true}"))
    out, classifier = tmp_path / "out", tmp_path / "classifier.pt"
    ablate = ["ablate", str(grid), "--seeds", "1", "--out", str(out), "--device", "cpu"]
    assert main(ablate) == 0
    assert "FCD" not in (out / "table.md").read_text()
    trained = (out / "plain" / "seed0" / "summary.json").stat().st_mtime_ns
    assert main(["classifier", "train", "--dataset", "shapes10", "--out", str(classifier), "train.max_steps=4",
                 "model.channels=8", "train.device=cpu"]) == 0
    assert main([*ablate, "--classifier", str(classifier)]) == 0
    assert (out / "plain" / "seed0" / "summary.json").stat().st_mtime_ns == trained
    with open(out / "table.csv") as f:
        rows = {r["variant"]: r for r in csv.DictReader(f)}
    assert all(float(rows[v]["fcd_mean"]) > 0 and float(rows[v]["fcd_floor_mean"]) >= 0 for v in rows)
    assert rows["plain"]["cc_mean"] == "" and 0 <= float(rows["conditional"]["cc_mean"]) <= 1
    assert rows["plain"]["fcd_intra_mean"] == "" and float(rows["conditional"]["fcd_intra_mean"]) > 0
    assert all(float(rows[v][column]) > 0 for v in rows for column in ("div_mean", "sharp_mean", "sharp_recon_mean"))
    assert main([*ablate, "--classifier", str(tmp_path / "missing.pt")]) == 2
    assert "--classifier: no file at" in capsys.readouterr().err


def test_a_damaged_classifier_is_refused_before_any_cell_trains(tmp_path, capsys):
    grid, out, damaged = tmp_path / "grid.yaml", tmp_path / "out", tmp_path / "classifier.pt"
    grid.write_text(GRID)
    damaged.write_bytes(b"PK\x03\x04" + b"\x00" * 300)
    assert main(["ablate", str(grid), "--seeds", "1", "--out", str(out), "--device", "cpu",
                 "--classifier", str(damaged)]) == 2
    assert "corrupt or truncated" in capsys.readouterr().err
    assert not list(out.glob("*/seed0/summary.json"))


def test_a_classifier_of_another_dataset_is_refused_before_any_cell_trains(tmp_path, capsys):
    grid, out, classifier = tmp_path / "grid.yaml", tmp_path / "out", tmp_path / "classifier.pt"
    grid.write_text(GRID)
    assert main(["classifier", "train", "--dataset", "shapes10", "--out", str(classifier), "train.max_steps=1",
                 "model.channels=8", "train.device=cpu"]) == 0
    record = read_checkpoint(classifier, file_format=CLASSIFIER_FORMAT, version=CLASSIFIER_VERSION)
    write_checkpoint(classifier, {**record, "dataset": "cifar100"}, file_format=CLASSIFIER_FORMAT,
                     version=CLASSIFIER_VERSION)
    assert main(["ablate", str(grid), "--seeds", "1", "--out", str(out), "--device", "cpu",
                 "--classifier", str(classifier)]) == 2
    assert "was trained on cifar100, but the run uses shapes10" in capsys.readouterr().err
    assert not (out / "plain").exists()


def test_mean_and_std_over_seeds_from_known_values(tmp_path):
    cells = [Cell("a", 0, tmp_path, {"test_mse": 1.0, "kl": 10.0}),
             Cell("a", 1, tmp_path, {"test_mse": 3.0, "kl": 14.0}),
             Cell("b", 0, tmp_path, {"test_mse": 2.0, "kl": 9.0}), Cell("b", 1, tmp_path, {"test_mse": 2.0, "kl": 7.0})]
    table = aggregate(cells)
    assert table["a"]["test_mse"] == pytest.approx((2.0, 2 ** 0.5))
    assert table["b"]["kl"] == pytest.approx((8.0, 2 ** 0.5))
    assert mean_std([5.0]) == (5.0, 0.0)
    line = claim_line(Claim("KL lower with b", "kl", "b", "a"), cells)
    assert line.startswith("KL lower with b: yes, b - a = -4 +- 4.2")  # per seed: -1 and -7, std sqrt(18)


def test_the_regularization_grid_has_each_regulariser_all_and_leave_one_out():
    grid = regularization_grid()
    names = [v.name for v in grid.variants]
    assert names[:7] == ["none", "+weight_decay", "+dropout", "+batchnorm", "+beta4", "+augmentation", "all"]
    assert len(names) == 12 and all(f"all-{r}" in names for r in ("dropout", "beta4", "augmentation"))
    all_cfg = next(v for v in grid.variants if v.name == "all").config({})
    assert (all_cfg.model.dropout, all_cfg.model.batchnorm, all_cfg.loss.beta, all_cfg.optim.weight_decay,
            all_cfg.data.crop_padding, all_cfg.model.noise_scale) == (0.3, True, 4.0, 1e-4, 4, 0.3)
    assert len(grid.claims) == 4


def test_a_grid_file_with_an_unknown_key_fails_before_training(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("base: vae-cifar10\nvariants:\n  x: {loss.betta: 2}\n")
    with pytest.raises(VaeganError, match="did you mean 'loss.beta'"):
        load_grid(str(bad))
    with pytest.raises(VaeganError, match="unknown grid"):
        load_grid("no-such-grid")


def test_a_cell_killed_between_its_checkpoint_and_summary_is_completed_and_measured(tmp_path):
    from vaegan.ablation.runner import measure, run_cell

    (tmp_path / "grid.yaml").write_text(GRID)
    cfg = load_grid(str(tmp_path / "grid.yaml")).variants[0].config(load_grid(str(tmp_path / "grid.yaml")).overrides)
    cell = tmp_path / "cell"
    run_cell(cfg, cell, 4)
    (cell / "summary.json").unlink()  # killed after the final checkpoint
    run_cell(cfg, cell, 4)
    assert (cell / "summary.json").is_file()
    assert "images_per_second" not in measure(cell, "cpu")  # completed, nothing trained again


def test_the_measurement_cache_follows_the_step_and_the_image_count_it_measured(tmp_path):
    from vaegan.ablation.runner import SuiteOptions, measure, run_cell

    (tmp_path / "grid.yaml").write_text(GRID)
    grid = load_grid(str(tmp_path / "grid.yaml"))
    cfg = grid.variants[0].config(grid.overrides)
    cell = tmp_path / "cell"
    run_cell(cfg, cell, 3)
    short = measure(cell, "cpu")
    run_cell(cfg, cell, 6)  # the budget grew: the cell trains on
    longer = measure(cell, "cpu")
    assert json.loads((cell / "ablation.json").read_text())["step"] == 6
    assert longer["test_mse"] != short["test_mse"]
    few = measure(cell, "cpu", SuiteOptions(images=8))  # a smoke measurement on 8 images replaces the cache
    assert json.loads((cell / "ablation.json").read_text())["images"] == 8 and few["test_mse"] != longer["test_mse"]
    assert measure(cell, "cpu") == longer


def test_a_cache_whose_values_are_damaged_is_measured_again(tmp_path):
    from vaegan.ablation.runner import measure, run_cell

    (tmp_path / "grid.yaml").write_text(GRID)
    grid = load_grid(str(tmp_path / "grid.yaml"))
    cell = tmp_path / "cell"
    run_cell(grid.variants[0].config(grid.overrides), cell, 2)
    measured = measure(cell, "cpu")
    cache = json.loads((cell / "ablation.json").read_text())
    (cell / "ablation.json").write_text(json.dumps({**cache, "values": 5}))
    assert measure(cell, "cpu") == measured


def test_too_few_measure_images_are_refused_before_any_cell_trains(tmp_path, capsys):
    (tmp_path / "grid.yaml").write_text(GRID)
    for command in (["ablate", str(tmp_path / "grid.yaml")], ["reproduce", "all"]):
        assert main([*command, "--out", str(tmp_path / "out"), "--measure-images", "5"]) == 2
        assert capsys.readouterr().err.strip() == ("vaegan: error: --measure-images 5: each cell's latent 5-NN "
                                                   "accuracy needs more than 5 test images; give 6 or more")
    assert not (tmp_path / "out").exists()


QUALITY = ("train_mse_mean", "test_mse_mean", "gap_mean", "kl_mean", "knn_mean", "loss_std_mean")


def _table(out):
    with open(out / "table.csv") as f:
        return {r["variant"]: {k: r[k] for k in QUALITY} for r in csv.DictReader(f)}


def test_jobs_2_gives_the_same_table_numbers_as_jobs_1(tmp_path):
    (tmp_path / "grid.yaml").write_text(GRID)
    common = ["ablate", str(tmp_path / "grid.yaml"), "--seeds", "2", "--device", "cpu"]
    assert main([*common, "--out", str(tmp_path / "one")]) == 0
    assert main([*common, "--out", str(tmp_path / "two"), "--jobs", "2", "--devices", "cpu"]) == 0
    assert _table(tmp_path / "one") == _table(tmp_path / "two")


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_a_failing_cell_is_reported_and_the_others_finish(tmp_path, capsys, jobs):
    grid = GRID + "  broken: {data.name: cifar10, data.dir: /nonexistent/vaegan, data.download: false}\n"
    (tmp_path / "grid.yaml").write_text(grid)
    code = main(["ablate", str(tmp_path / "grid.yaml"), "--seeds", "1", "--out", str(tmp_path / "out"),
                 "--device", "cpu", "--jobs", jobs])
    err = capsys.readouterr().err
    assert code == 2 and "1 of 3 cells failed" in err and "broken seed 0" in err
    md = (tmp_path / "out" / "table.md").read_text()
    assert "broken seed 0: FAILED" in md
    assert all((tmp_path / "out" / v / "seed0" / "ablation.json").is_file() for v in ("plain", "beta4"))


def test_a_refused_cell_of_a_fused_group_fails_alone_and_the_others_train_fused(tmp_path, capsys):
    (tmp_path / "grid.yaml").write_text(GRID)
    out = tmp_path / "out"
    (out / "beta4" / "seed1").mkdir(parents=True)
    (out / "beta4" / "seed1" / "notes.txt").write_text("mine")  # a file vaegan did not write
    code = main(["ablate", str(tmp_path / "grid.yaml"), "--seeds", "2", "--out", str(out), "--device", "cpu"])
    assert code == 2 and "1 of 4 cells failed" in capsys.readouterr().err
    assert (out / "beta4" / "seed1" / "notes.txt").read_text() == "mine"
    for cell in ("plain/seed0", "plain/seed1", "beta4/seed0"):
        assert len(json.loads((out / cell / "summary.json").read_text())["fused"]["runs"]) == 3


@pytest.mark.slow  # an ablate pool killed with SIGKILL, then run again
def test_a_killed_pool_resumes_without_retraining_finished_cells(tmp_path):
    grid = tmp_path / "grid.yaml"
    grid.write_text(GRID.replace("train.max_steps: 6", "train.max_steps: 30"))
    out = tmp_path / "out"
    command = [sys.executable, "-m", "vaegan", "ablate", str(grid), "--seeds", "2", "--out", str(out),
               "--device", "cpu", "--jobs", "2", "--devices", "cpu"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while not list(out.glob("*/seed*/ablation.json")) and time.time() < deadline and process.poll() is None:
        time.sleep(0.2)
    os.kill(process.pid, signal.SIGKILL)  # the workers die with it (they hold their cells' locks)
    process.wait()
    finished = list(out.glob("*/seed*/ablation.json"))
    assert finished, "no cell finished"
    stamps = {path.parent: (path.parent / "summary.json").stat().st_mtime_ns for path in finished}
    assert not (out / "table.md").exists()
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert all((cell / "summary.json").stat().st_mtime_ns == stamp for cell, stamp in stamps.items())
    assert (out / "table.md").is_file() and len(list(out.glob("*/seed*/ablation.json"))) == 4


def test_the_submitit_local_executor_runs_the_grid_and_slurm_without_submitit_says_how_to_get_it(
        tmp_path, capsys, monkeypatch):
    (tmp_path / "grid.yaml").write_text(GRID)
    ablate = ["ablate", str(tmp_path / "grid.yaml"), "--seeds", "1", "--out", str(tmp_path / "out"), "--device",
              "cpu"]
    assert main([*ablate, "--executor", "local", "--timeout-min", "10", "--gpus-per-job", "0"]) == 0
    assert _table(tmp_path / "out").keys() == {"plain", "beta4"}
    assert list((tmp_path / "out" / "submitit").iterdir())  # submitit's job folder: logs and pickles
    capsys.readouterr()
    monkeypatch.setitem(sys.modules, "submitit", None)  # as if it were not installed
    assert main([*ablate, "--executor", "slurm"]) == 2
    assert "pip install 'vaegan[slurm]'" in capsys.readouterr().err


def test_the_users_own_tables_are_never_overwritten_and_vaegans_own_are_updated(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "table.md").write_text("my own table\n")
    grid, budget = Grid("g", []), "budget: 1 step"
    cells = [Cell("a", 0, out / "a" / "seed0", {"test_mse": 1.0})]
    with pytest.raises(VaeganError, match="table.md was not written by vaegan.*move it away or choose another --out"):
        write_tables(grid, cells, out, budget)
    assert (out / "table.md").read_text() == "my own table\n"
    assert not (out / "table.csv").exists()  # none of the three is written when one is refused

    (out / "table.md").unlink()
    write_tables(grid, cells, out, budget)
    cells[0].values["test_mse"] = 2.0
    write_tables(grid, cells, out, budget)  # a rerun updates its own tables
    assert "| a | 2 ± 0 |" in (out / "table.md").read_text()
    (out / "table.csv").write_text("edited\n")
    with pytest.raises(VaeganError, match="table.csv was not written by vaegan, or was changed since"):
        write_tables(grid, cells, out, budget)
    assert (out / "table.csv").read_text() == "edited\n"


def test_slurm_without_slurm_on_the_machine_is_one_line(tmp_path, capsys, monkeypatch):
    pytest.importorskip("submitit")
    (tmp_path / "grid.yaml").write_text(GRID)
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch, no srun
    assert main(["ablate", str(tmp_path / "grid.yaml"), "--seeds", "1", "--out", str(tmp_path / "out"),
                 "--executor", "slurm"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Slurm was not found (`sbatch` and `srun` not on PATH)" in err
    assert "--executor local" in err and "--executor pool" in err


def test_a_table_vaegan_did_not_write_is_refused_before_any_cell_trains(tmp_path, capsys):
    (tmp_path / "grid.yaml").write_text(GRID)
    out = tmp_path / "out"
    out.mkdir()
    (out / "table.html").write_text("my page")
    assert main(["ablate", str(tmp_path / "grid.yaml"), "--seeds", "1", "--out", str(out), "--device", "cpu"]) == 2
    assert "table.html was not written by vaegan" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["table.html"]
