"""benchmarks/perceptual-cifar100.yaml: the grid docs/perceptual.md measured stays a valid grid and a fair
comparison (the variants differ in the perceptual loss only)."""

from pathlib import Path

from vaegan.ablation.grids import load_grid

GRID = Path(__file__).resolve().parents[2] / "benchmarks" / "perceptual-cifar100.yaml"


def test_the_perceptual_grid_differs_only_in_the_perceptual_loss_at_equal_steps():
    grid = load_grid(str(GRID))
    configs = {variant.name: variant.config(grid.overrides) for variant in grid.variants}
    assert set(configs) == {"mse", "perceptual", "perceptual-0.025"}
    mse = configs.pop("mse")
    assert mse.train.max_steps == 390 and mse.loss.perceptual_weight == 0  # one CIFAR-100 epoch of batch 128
    for perceptual in configs.values():
        assert perceptual.loss.perceptual_weight > 0 and perceptual.loss.perceptual_net == "classifier"
        perceptual.loss = mse.loss
        assert perceptual == mse
