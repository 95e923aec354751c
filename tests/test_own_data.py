"""A user's own images through every command: data prepare, train (a conditional preset takes its class count
from the folder), classifier train, evaluate, report and ablate; and the one-line refusals of bad data."""

import subprocess
import sys

import numpy as np

from vaegan.cli import main

TINY = ["model.channels=8", "model.d_channels=8", "model.latent_dim=8", "model.embed_dim=4", "train.batch_size=8",
        "train.max_steps=2", "train.eval_images=16", "train.device=cpu"]


def test_a_folder_of_images_trains_evaluates_reports_and_ablates(tmp_path, monkeypatch, capsys, image_folder):
    monkeypatch.setenv("VAEGAN_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "photos"
    image_folder(root, per_class=20)
    data = ["data.name=folder", f"data.dir={root}"]
    assert main(["data", "prepare", "folder", "--dir", str(root)]) == 0
    assert "54 train / 6 test images, 3 classes" in capsys.readouterr().out
    run = tmp_path / "run"
    assert main(["train", "--preset", "cvaegan-cifar100", "--run-dir", str(run), *data, *TINY]) == 0
    classifier = tmp_path / "classifier.pt"
    assert main(["classifier", "train", "--dataset", "folder", "--out", str(classifier), f"data.dir={root}",
                 "train.max_steps=2", "model.channels=4", "train.batch_size=8", "train.device=cpu"]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(run), "--metrics", "recon,latent,cc,fcd", "--n", "16", "--classifier",
                 str(classifier), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "cc:" in out and "fcd:" in out
    assert main(["report", str(run)]) == 0 and (run / "report.html").is_file()
    grid = tmp_path / "grid.yaml"
    grid.write_text("base: vae-cifar10\nvariants:\n  plain: {}\n  beta4: {loss.beta: 4}\n")
    assert main(["ablate", str(grid), "--seeds", "1", "--out", str(tmp_path / "ablation"), "--device", "cpu",
                 *data, *TINY]) == 0
    assert "| beta4 |" in (tmp_path / "ablation" / "table.md").read_text()


def test_a_classifier_of_another_folder_is_not_used(tmp_path, monkeypatch, capsys, image_folder):
    monkeypatch.setenv("VAEGAN_CACHE", str(tmp_path / "cache"))
    image_folder(tmp_path / "a")
    image_folder(tmp_path / "b", classes=("circle", "square"))
    run, classifier = tmp_path / "run", tmp_path / "classifier.pt"
    assert main(["train", "--preset", "vae-cifar10", "--run-dir", str(run), "data.name=folder",
                 f"data.dir={tmp_path / 'a'}", *TINY]) == 0
    assert main(["classifier", "train", "--dataset", "folder", "--out", str(classifier),
                 f"data.dir={tmp_path / 'b'}", "train.max_steps=1", "model.channels=4", "train.batch_size=8", "train.device=cpu"]) == 0
    assert main(["evaluate", str(run), "--metrics", "fcd", "--n", "8", "--classifier", str(classifier)]) == 0
    out = capsys.readouterr().out
    assert "fcd: skipped: classifier" in out and "was trained on b-" in out


def test_bad_own_data_ends_in_one_line_and_changes_nothing(tmp_path):
    root = tmp_path / "photos"
    (root / "only").mkdir(parents=True)
    (root / "only" / "a.png").write_bytes(b"not a png")
    bad = tmp_path / "bad.npz"
    np.savez(bad, x=np.zeros((4, 32, 32, 3), dtype=np.float32))
    for data, expected in ((f"data.dir={root}", "one class folder only"), (None, "needs data.dir")):
        argv = ["train", "--preset", "vae-cifar10", "--run-dir", str(tmp_path / "run"), "data.name=folder",
                *([data] if data else [])]
        result = subprocess.run([sys.executable, "-m", "vaegan", *argv], capture_output=True, text=True, timeout=120)
        assert result.returncode == 2 and result.stderr.count("\n") == 1 and expected in result.stderr
    result = subprocess.run([sys.executable, "-m", "vaegan", "train", "--preset", "vae-cifar10", "--run-dir",
                             str(tmp_path / "run"), "data.name=npz", f"data.dir={bad}"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "must be uint8" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists() and sorted(p.name for p in root.rglob("*")) == ["a.png", "only"]


def test_a_flat_folder_trains_a_conditional_preset_as_one_class_and_refuses_a_classifier(tmp_path, monkeypatch,
                                                                                         capsys, image_folder):
    monkeypatch.setenv("VAEGAN_CACHE", str(tmp_path / "cache"))
    image_folder(tmp_path / "classes", per_class=8)
    flat = tmp_path / "flat"
    flat.mkdir()
    for path in (tmp_path / "classes").rglob("*.*"):
        path.rename(flat / f"{path.parent.name}-{path.name}")
    run = tmp_path / "run"
    assert main(["train", "--preset", "cvaegan-cifar100", "--run-dir", str(run), "data.name=folder",
                 f"data.dir={flat}", *TINY]) == 0
    assert main(["report", str(run)]) == 0
    assert main(["classifier", "train", "--dataset", "folder", f"data.dir={flat}", "--out",
                 str(tmp_path / "c.pt")]) == 2
    assert "one class" in capsys.readouterr().err
