"""benchmarks/quality-cifar100.yaml: the grid docs/quality.md measured stays valid and fair (every variant is
the faithful preset at the same steps, plus the changes its name says)."""

from pathlib import Path

from vaegan.ablation.grids import load_grid
from vaegan.config import check_consistency

GRID = Path(__file__).resolve().parents[2] / "benchmarks" / "quality-cifar100.yaml"


def test_each_variant_is_the_faithful_preset_plus_its_own_changes_at_equal_steps():
    grid = load_grid(str(GRID))
    faithful = next(v for v in grid.variants if v.name == "faithful")
    assert faithful.preset == "cvaegan-cifar100" and faithful.overrides == {}
    base = faithful.config(grid.overrides).to_dict()
    for variant in grid.variants:
        cfg = variant.config(grid.overrides)
        check_consistency(cfg)
        changed = {f"{section}.{key}" for section, values in cfg.to_dict().items() for key, value in values.items()
                   if base[section][key] != value}
        assert changed == set(variant.overrides), variant.name
        assert cfg.train.max_steps == 100 and cfg.train.batch_size == 128
