"""`vaegan reproduce` on a shapes10 stand-in of both experiments at a tiny budget: every claim gets a row and a
verdict, and a killed reproduction continues without retraining what it finished."""

import os
import signal
import subprocess
import sys
import time

import pytest

from vaegan.cli import main
from vaegan.errors import VaeganError
from vaegan.evaluation.classifier import FORMAT, NETWORK, VERSION
from vaegan.models.classifier import Classifier
from vaegan.reproduce.claims import NOT_SUPPORTED, NOT_TESTABLE, SUPPORTED
from vaegan.reproduce.experiments import EXPERIMENTS, Options, check_classifiers, metrics_classifier
from vaegan.runs.checkpoint import write_checkpoint

STAND_IN = ["--budget", "0.001", "--seeds", "1", "--subset", "200", "--measure-images", "200", "--device", "cpu",
            "data.name=shapes10", "model.channels=8", "model.d_channels=8", "model.latent_dim=8", "model.embed_dim=4",
            "train.batch_size=16", "train.eval_images=32"]
CLAIMS = {"cifar100": 15, "cifar10": 6}


def claim_rows(report: str) -> list[list[str]]:
    return [[cell.strip() for cell in line.strip("|").split(" | ")] for line in report.splitlines()
            if line.startswith("| ") and not line.startswith("| claim")]


@pytest.mark.slow  # a reproduction killed with SIGKILL, then run again
def test_a_killed_reproduction_continues_and_reports_a_verdict_on_every_claim(tmp_path, capsys):
    out = tmp_path / "out"
    process = subprocess.Popen([sys.executable, "-m", "vaegan", "reproduce", "all", "--out", str(out), *STAND_IN],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "OMP_NUM_THREADS": "1"})
    first = out / "cifar100-vaegan" / "gan-cifar100" / "seed0" / "summary.json"
    deadline = time.monotonic() + 300
    while not first.exists():
        assert process.poll() is None, process.communicate()[1][-3000:]
        assert time.monotonic() < deadline
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.communicate()
    finished = {path: path.stat().st_mtime_ns for path in out.rglob("summary.json")}
    assert first in finished and not (out / "report.md").exists()

    assert main(["reproduce", "all", "--out", str(out), *STAND_IN]) == 0
    assert all(path.stat().st_mtime_ns == stamp for path, stamp in finished.items())  # not retrained
    printed = capsys.readouterr().out
    report = (out / "report.md").read_text()
    rows = claim_rows(report)
    assert len(rows) == sum(CLAIMS.values())
    assert all(row[2].strip("*") in (SUPPORTED, NOT_SUPPORTED, NOT_TESTABLE) and row[3] for row in rows)
    assert "budget 0.001" in report and "test accuracy" in report and "No mode collapse" in printed
    assert (out / "report.html").read_text().count("<tr><td>") == len(rows)
    assert (out / "cifar100-vaegan" / "figures" / "samples.png").is_file()

    assert main(["reproduce", "all", "--out", str(out), *STAND_IN]) == 0  # done: read, not trained again
    assert claim_rows((out / "report.md").read_text()) == rows


def test_a_missing_classifier_file_is_one_line(tmp_path, capsys):
    assert main(["reproduce", "cifar100-vaegan", "--out", str(tmp_path / "out"), "--classifier",
                 str(tmp_path / "none.pt"), *STAND_IN]) == 2
    assert capsys.readouterr().err.strip() == f"vaegan: error: --classifier: no file at {tmp_path / 'none.pt'}"


def given(folder, dataset: str):
    """A classifier file (untrained, 4 channels) recorded as trained on `dataset`."""
    path = folder / f"{dataset}.pt"
    write_checkpoint(path, {"state": Classifier(10, 4).state_dict(), "network": NETWORK, "channels": 4,
                            "num_classes": 10, "class_names": list("abcdefghij"), "dataset": dataset,
                            "test_accuracy": 0.5}, file_format=FORMAT, version=VERSION)
    return path


def test_a_classifier_no_experiment_can_use_is_refused_before_any_work(tmp_path, capsys, monkeypatch):
    for name in EXPERIMENTS:
        monkeypatch.setitem(EXPERIMENTS, name, lambda options: pytest.fail("ran without the given classifier"))
    cifar10 = given(tmp_path, "cifar10")
    assert main(["reproduce", "all", "--out", str(tmp_path / "out"), "--classifier", str(cifar10),
                 *STAND_IN]) == 2  # the stand-in runs both experiments on shapes10
    assert capsys.readouterr().err.strip() == (
        f"vaegan: error: --classifier {cifar10} was trained on cifar10, but the experiment(s) run here need a "
        "classifier of shapes10 (cifar100-vaegan), shapes10 (cifar10-regularization); pass one trained on that, "
        "or none")
    options = Options(tmp_path / "out", 0.001, 1, [given(tmp_path, "cifar100"), cifar10], "cpu", {}, 100)
    check_classifiers(list(EXPERIMENTS), options)  # each file serves one of the experiments
    with pytest.raises(VaeganError, match=r"trained on cifar10, .* cifar100 \(cifar100-vaegan\);"):
        check_classifiers(["cifar100-vaegan"], options)
    assert not (tmp_path / "out").exists()


def test_each_experiment_takes_the_given_classifier_of_its_own_dataset(tmp_path):
    import torch

    options = Options(tmp_path / "out", 0.001, 1, [given(tmp_path, "cifar10"), given(tmp_path, "shapes10")], "cpu",
                      {}, 100)
    assert metrics_classifier({"data.name": "shapes10"}, options)[0] == tmp_path / "shapes10.pt"
    options.classifiers = [tmp_path / "cifar10.pt"]  # none of shapes10: one is trained into OUT
    path, info = metrics_classifier({"data.name": "shapes10", "model.channels": 4}, options)
    assert path == tmp_path / "out" / "classifier-shapes10.pt" and info["dataset"] == "shapes10"
    assert torch.load(path, weights_only=True)["format"] == FORMAT


def test_the_users_own_report_is_never_overwritten_and_vaegans_own_is_updated(tmp_path, capsys, monkeypatch):
    from vaegan.reproduce.claims import Finding
    from vaegan.reproduce.experiments import EXPERIMENTS, Outcome

    verdict, runs = [SUPPORTED], []
    monkeypatch.setitem(EXPERIMENTS, "cifar100-vaegan", lambda options: runs.append(1) or Outcome(
        "cifar100-vaegan", "stand-in", [Finding("a claim", "1.0", verdict[0], "a rule")]))
    out = tmp_path / "out"
    out.mkdir()
    (out / "report.md").write_text("my own notes\n")
    assert main(["reproduce", "cifar100-vaegan", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{out / 'report.md'} was not written by vaegan" in err
    assert (out / "report.md").read_text() == "my own notes\n" and runs == []  # refused before any work

    (out / "report.md").unlink()
    assert main(["reproduce", "cifar100-vaegan", "--out", str(out)]) == 0
    verdict[0] = NOT_SUPPORTED
    assert main(["reproduce", "cifar100-vaegan", "--out", str(out)]) == 0  # a rerun updates its own report
    assert f"**{NOT_SUPPORTED}**" in (out / "report.md").read_text()
    with open(out / "report.html", "a") as f:
        f.write("<!-- the user's edit -->")
    capsys.readouterr()
    assert main(["reproduce", "cifar100-vaegan", "--out", str(out)]) == 2
    assert "report.html was not written by vaegan, or was changed since" in capsys.readouterr().err
    assert (out / "report.html").read_text().endswith("<!-- the user's edit -->")


def test_the_users_own_pngs_in_the_figures_folder_are_never_overwritten(tmp_path, monkeypatch):
    from vaegan.errors import VaeganError
    from vaegan.reproduce import experiments

    def run_figures(run, folder):
        folder.mkdir(exist_ok=True)
        (folder / "samples.png").write_bytes(b"vaegan's")
        return [(folder / "samples.png", "samples")]
    monkeypatch.setattr(experiments, "run_figures", run_figures)
    figures = tmp_path / "figures"
    figures.mkdir()
    (figures / "samples.png").write_bytes(b"the user's")
    with pytest.raises(VaeganError, match="samples.png was not written by vaegan"):
        experiments._figures(None, tmp_path)
    assert (figures / "samples.png").read_bytes() == b"the user's"
    (figures / "samples.png").unlink()
    assert experiments._figures(None, tmp_path) == experiments._figures(None, tmp_path)  # reruns update their own
