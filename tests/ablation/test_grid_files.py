"""Grid files users write by hand: every mistake is one error line naming the file, and nothing is written."""

import re

import pytest
import yaml

from vaegan.ablation.grids import load_grid
from vaegan.cli import main

VARIANTS = b"variants:\n  plain: {}\n"
BAD_FILES = {
    "yaml-syntax": (b"base: vae-cifar10\nvariants: {plain: {}\n", "not a readable grid YAML file .*at line 3"),
    "binary": (bytes(range(256)), "not a readable grid YAML file .*can't decode"),
    "nul-byte": (b"base: vae-cifar10\x00\n" + VARIANTS, "not a readable grid YAML file .*unacceptable character"),
    "deeply-nested": (b"base: " + b"[" * 5000, "not a readable grid YAML file .*recursion"),
    "python-tag": (b"base: !!python/object/apply:os.system ['touch PWNED']\n" + VARIANTS,
                   "not a readable grid YAML file .*python/object/apply:os.system"),
    "list-base": (b"base: [vae-cifar10]\n" + VARIANTS, "needs `base: PRESET`"),
    "number-base": (b"base: 3\n" + VARIANTS, "needs `base: PRESET`"),
    "no-variants": (b"base: vae-cifar10\nvariants: {}\n", "needs `base: PRESET` and `variants"),
    "top-level-list": (b"- base\n- variants\n", "needs `base: PRESET`"),
    "list-variant": (b"base: vae-cifar10\nvariants:\n  plain: [loss.beta, 4]\n", "variant plain: expected a mapping"),
    "string-variant": (b"base: vae-cifar10\nvariants:\n  plain: loss.beta=4\n", "variant plain: expected a mapping"),
    "false-variant": (b"base: vae-cifar10\nvariants:\n  plain: false\n", "variant plain: expected a mapping"),
    "list-overrides": (b"base: vae-cifar10\noverrides: [1]\n" + VARIANTS, "overrides: expected a mapping"),
    "list-value": (b"base: vae-cifar10\nvariants:\n  plain: {train.max_steps: [1, 2]}\n",
                   r"variant plain: invalid value for 'train\.max_steps': \[1, 2\] is a list"),
    "unknown-key": (b"base: vae-cifar10\nvariants:\n  plain: {loss.betta: 4}\n", "variant plain: .*'loss.beta'"),
}
BAD_NAMES = ["../../x", "/abs/path", "a/b", "a\\b", ".", "..", "", "a b", "x:y", "a\nb"]


@pytest.fixture(autouse=True)
def _in_tmp_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # where a `touch PWNED` or a default runs/ folder would land


def _refused_by_the_cli(tmp_path, capsys, grid, message):
    """`vaegan ablate GRID --out OUT` exits 2 with one error line naming GRID and matching `message`, writing
    nothing at all."""
    before = sorted(tmp_path.rglob("*"))
    assert main(["ablate", str(grid), "--out", str(tmp_path / "out")]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"vaegan: error: {grid}: "), lines
    assert re.search(message, lines[0]), lines[0]
    assert sorted(tmp_path.rglob("*")) == before


@pytest.mark.parametrize("content, message", BAD_FILES.values(), ids=BAD_FILES.keys())
def test_a_bad_grid_file_is_one_error_line_naming_it(tmp_path, capsys, content, message):
    grid = tmp_path / "grid.yaml"
    grid.write_bytes(content)
    _refused_by_the_cli(tmp_path, capsys, grid, message)


@pytest.mark.parametrize("name", BAD_NAMES)
def test_a_variant_name_that_is_not_one_plain_folder_name_is_refused(tmp_path, capsys, name):
    grid = tmp_path / "grid.yaml"
    grid.write_text(yaml.safe_dump({"base": "vae-cifar10", "variants": {name: {}}}))
    _refused_by_the_cli(tmp_path, capsys, grid, r"variant name .* use letters, digits and _ \. \+ = -")


def test_the_built_in_variant_names_and_their_characters_stay_valid(tmp_path):
    names = [v.name for grid in ("regularization", "baselines") for v in load_grid(grid).variants]
    assert {"none", "+weight_decay", "all-dropout", "vae-cifar100", "cvaegan-cifar100-plus"} <= set(names)
    grid = tmp_path / "grid.yaml"
    grid.write_text("base: vae-cifar10\nvariants:\n  beta=4_v1.0+x-Y: {loss.beta: 4}\n  .hidden: {}\n")
    assert [v.name for v in load_grid(str(grid)).variants] == ["beta=4_v1.0+x-Y", ".hidden"]
