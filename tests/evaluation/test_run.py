"""Opening a run: the checkpoint's records are checked before a model is built from them."""

import shutil

import pytest

from vaegan.errors import VaeganError
from vaegan.evaluation.run import load_run
from vaegan.runs import RunDir
from vaegan.runs.checkpoint import read_checkpoint, write_checkpoint


@pytest.fixture(scope="module")
def conditional_run(tiny_run):
    return tiny_run("cond", {"model.name": "vaegan", "model.conditional": True, "train.ema_decay": 0.9})


@pytest.mark.parametrize("field, value, expected", [
    ("num_classes", -3, "its num_classes is -3"),
    ("num_classes", 2.5, "its num_classes is 2.5"),
    ("num_classes", True, "its num_classes is True"),
    ("num_classes", 10**9, "its num_classes is 1000000000"),
    ("step", "two", "its step is 'two'"),
    ("ema", {"decay": 0.9}, "its ema record holds no shadow weights"),
    ("model", [1, 2], "its model record is not a set of named weights"),
])
def test_a_checksummed_checkpoint_with_a_bad_record_is_one_error_naming_it(tmp_path, conditional_run, field, value,
                                                                            expected):
    run = tmp_path / "run"
    shutil.copytree(conditional_run, run)
    checkpoint = RunDir(run).checkpoint
    payload = read_checkpoint(checkpoint)
    write_checkpoint(checkpoint, {**payload, field: value})
    with pytest.raises(VaeganError, match=expected):
        load_run(run, "cpu")


def test_a_checkpoint_without_its_class_count_is_refused(tmp_path, conditional_run):
    run = tmp_path / "run"
    shutil.copytree(conditional_run, run)
    checkpoint = RunDir(run).checkpoint
    payload = read_checkpoint(checkpoint)
    del payload["num_classes"]
    write_checkpoint(checkpoint, payload)
    with pytest.raises(VaeganError, match="it has no num_classes"):
        load_run(run, "cpu")
