import subprocess
import sys

import pytest

from vaegan.cli import main, parse_args


def run_cli(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vaegan", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=300)


def _one_error_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("vaegan: error: ")
    return lines[0]


@pytest.mark.parametrize("args, expected", [
    (["train", "--preset", "vae-cifar10", "train.epoch=3"], "unknown config key 'train.epoch'"),
    (["train", "--preset", "vae-cifar10", "train.epochs=lots"], "'train.epochs'"),
    (["train", "--preset", "vae-cifar10", "data.name=mnist"], "allowed: cifar10, cifar100, shapes10"),
    (["train", "--preset", "no-such-preset"], "unknown preset 'no-such-preset'"),
])
def test_config_mistakes_end_in_one_readable_line(args, expected, tmp_path):
    line = _one_error_line(run_cli(*args, "--run-dir", str(tmp_path / "run")))
    assert expected in line
    assert not (tmp_path / "run").exists()


def test_missing_data_offline_says_where_to_put_it_and_about_shapes10(tmp_path):
    line = _one_error_line(run_cli("train", "--preset", "vae-cifar10", "--run-dir", str(tmp_path / "run"),
                                   f"data.dir={tmp_path / 'nodata'}", "data.download=false"))
    assert "VAEGAN_DATA" in line and "shapes10" in line


def test_corrupt_checkpoint_on_resume(tmp_path):
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    (tmp_path / "run" / "checkpoints" / "last.pt").write_bytes(b"\x00" * 100)
    assert "corrupt or truncated" in _one_error_line(run_cli("train", "--resume", str(tmp_path / "run")))


def test_presets_lists_each_with_a_description(capsys):
    assert main(["presets"]) == 0
    out = capsys.readouterr().out
    assert "vae-cifar10-regularized" in out and "beta 4" in out


def test_train_and_resume_from_the_command_line(tmp_path, capsys):
    run = tmp_path / "run"
    common = ["model.channels=8", "model.latent_dim=8", "train.batch_size=8", "train.eval_images=16",
              "train.device=cpu"]
    assert main(["train", "--preset", "vae-cifar10-regularized", "--run-dir", str(run), "data.name=shapes10",
                 "train.max_steps=2", *common]) == 0
    assert main(["train", "--resume", str(run), "train.max_steps=3"]) == 0
    out = capsys.readouterr().out
    assert "step 3" in out and str(run) in out


def test_data_prepare_shapes10(capsys):
    assert main(["data", "prepare", "shapes10"]) == 0
    assert "10 classes" in capsys.readouterr().out


def test_demo_trains_the_conditional_vaegan_and_leaves_its_grids(tmp_path, capsys):
    run = tmp_path / "demo"
    assert main(["demo", "--run-dir", str(run), "data.name=shapes10", "model.channels=8", "model.d_channels=8",
                 "model.latent_dim=8", "train.batch_size=8", "train.max_steps=2", "train.eval_images=16",
                 "train.device=cpu"]) == 0
    out = capsys.readouterr().out
    assert "cvaegan-cifar100" in out and "samples/" in out and "recon/" in out
    assert (run / "samples" / "final.png").is_file() and (run / "recon" / "final.png").is_file()


def test_an_inconsistent_config_is_one_line(tmp_path):
    line = _one_error_line(run_cli("train", "--preset", "gan-cifar100", "--run-dir", str(tmp_path / "run"),
                                   "data.name=shapes10", "loss.d_on_prior=false"))
    assert "d_on_prior" in line


def test_overrides_may_follow_the_options_and_anything_else_unknown_is_refused(capsys):
    args = parse_args(["ablate", "regularization", "a.b=1", "--seeds", "2", "train.max_steps=3"])
    assert (args.seeds, args.overrides) == (2, ["a.b=1", "train.max_steps=3"])
    train_args = parse_args(["train", "--preset", "vae-cifar10", "--run-dir", "r", "loss.beta=2"])
    assert train_args.overrides == ["loss.beta=2"]
    for argv in (["ablate", "regularization", "--seeds", "2", "--bogus"], ["presets", "loss.beta=2"]):
        with pytest.raises(SystemExit) as exit_info:
            parse_args(argv)
        assert exit_info.value.code == 2
    assert "unrecognized arguments: loss.beta=2" in capsys.readouterr().err


def test_a_missing_perceptual_network_file_is_one_line_saying_how_to_get_it(tmp_path):
    line = _one_error_line(run_cli("train", "--preset", "vae-cifar10", "--run-dir", str(tmp_path / "run"),
                                   "data.name=shapes10", "loss.perceptual_weight=1", "loss.perceptual_net=vgg16",
                                   f"loss.perceptual_weights={tmp_path / 'vgg16.pth'}"))
    assert "vgg16-397923af.pth" in line and "VAEGAN_VGG" in line and "no file at" in line


def test_the_command_line_starts_without_loading_torch():
    """The choices it lists (metrics, experiments, executors) come from light namespaces of their own packages."""
    code = "import sys, vaegan.cli; vaegan.cli.build_parser(); assert 'torch' not in sys.modules, 'torch loaded'"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).returncode == 0


def test_warnings_reach_the_terminal_as_one_vaegan_warning_line_each(tmp_path, capsys):
    """The package warns through logging only; the command line shows each record as `vaegan: warning: ...`."""
    run = tmp_path / "run"
    common = ["data.name=shapes10", "model.channels=8", "model.latent_dim=8", "train.batch_size=8",
              "train.eval_images=16", "train.device=cpu"]
    assert main(["train", "--preset", "vae-cifar10", "--run-dir", str(run), "train.max_steps=2", *common]) == 0
    (run / "metrics.jsonl").write_text("")
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "train.max_steps=3"]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert len(warnings) == 1 and warnings[0].startswith("vaegan: warning: ") and "is shorter than" in warnings[0]


def test_an_error_naming_something_with_a_newline_is_still_one_line(tmp_path):
    line = _one_error_line(run_cli("train", "--preset", "no\nsuch", "--run-dir", str(tmp_path / "run")))
    assert "unknown preset 'no\\nsuch'" in line
