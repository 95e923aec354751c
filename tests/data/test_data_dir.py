from pathlib import Path

import pytest

from vaegan.data import load_dataset, prepare_dataset, resolve_data_dir
from vaegan.errors import VaeganError


def test_config_beats_env_beats_default(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("VAEGAN_DATA", str(tmp_path / "env"))
    assert resolve_data_dir(str(tmp_path / "config")) == tmp_path / "config"
    assert resolve_data_dir(None) == tmp_path / "env"
    monkeypatch.delenv("VAEGAN_DATA")
    assert resolve_data_dir(None) == tmp_path / "home" / ".cache" / "vaegan"
    assert resolve_data_dir("~/mine") == tmp_path / "home" / "mine"


def test_relative_dir_becomes_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resolve_data_dir("data") == tmp_path / "data" and Path(resolve_data_dir("data")).is_absolute()


@pytest.mark.parametrize(("name", "split", "message"), [("mnist", "train", "unknown dataset 'mnist'"),
                                                        ("cifar10", "val", "unknown split 'val'")])
def test_unknown_choices_are_rejected(name, split, message):
    with pytest.raises(VaeganError, match=message):
        load_dataset(name, split)


def test_prepare_reports_counts(tmp_path, cifar_files):
    cifar_files.folder(tmp_path, "cifar100", rows=4)
    assert prepare_dataset("cifar100", str(tmp_path)) == {
        "path": str(tmp_path / "cifar-100-python"), "train": 4, "test": 4, "classes": 100}
