"""benchmarks/quality-cifar*.yaml: the grids docs/quality.md measured stay valid and fair (every variant is
the reference preset plus the changes its name says, at the same steps or, at equal time, at steps in proportion
to its measured speed)."""

from pathlib import Path

from vaegan.ablation.grids import load_grid
from vaegan.config import check_consistency

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
SCREEN_IMAGES_PER_SECOND = {"faithful": 36.9, "resize": 25.4, "class-norm": 37.3, "class-prior": 34.7,
                            "combined": 20.4}  # quality.md
# the changes the screen did not time: 40-step runs in the order A B C ... C B A, each map's steps scaled from its
# first variant's (quality.md, "The single changes the first table lacked" and "The ResNet networks alone, and
# DiffAugment in the recipe"; the last two maps are one loop)
SPEED_RUNS_IMAGES_PER_SECOND = (
    {"faithful": (83.6, 79.3), "perceptual": (68.9, 71.7), "diffaugment": (75.8, 79.5)},
    {"faithful": (82.3, 83.9), "resnet": (20.9, 21.5), "resnet-narrow": (71.0, 71.2)},
    {"combined-class-head-split-all": (45.7, 46.9), "combined-class-head-split-all-diffaugment": (45.5, 45.5)},
)
# vae-cifar10-regularized and its variants, one loop of 30-step runs (quality.md, "The beta-VAE: ...")
BETA_VAE_IMAGES_PER_SECOND = {"regularized": (144.9, 145.5), "resize": (89.3, 92.9), "perceptual": (118.4, 118.5),
                              "all": (78.4, 77.6)}


def changes(grid_file: str, reference: str = "faithful", preset: str = "cvaegan-cifar100"
            ) -> dict[str, tuple[set[str], int]]:
    """Per variant: the keys where it differs from the `reference` variant (which is `preset` unchanged), steps
    aside, and its steps."""
    grid = load_grid(str(BENCHMARKS / grid_file))
    plain = next(v for v in grid.variants if v.name == reference)
    assert plain.preset == preset and set(plain.overrides) <= {"train.max_steps"}
    base = plain.config(grid.overrides).to_dict()
    found = {}
    for variant in grid.variants:
        cfg = variant.config(grid.overrides)
        check_consistency(cfg)
        assert cfg.train.batch_size == 128
        found[variant.name] = ({f"{section}.{key}" for section, values in cfg.to_dict().items()
                                for key, value in values.items() if base[section][key] != value} - {"train.max_steps"},
                               cfg.train.max_steps)
        assert found[variant.name][0] == set(variant.overrides) - {"train.max_steps"}, variant.name
    return found


def means(speeds: dict[str, tuple[float, ...]]) -> dict[str, float]:
    return {name: sum(runs) / len(runs) for name, runs in speeds.items()}


def assert_steps_follow_speed(found: dict[str, tuple[set[str], int]], speeds: dict[str, float]) -> None:
    """Each timed variant's steps are the first one's scaled by its images/s against the first one's."""
    reference = next(iter(speeds))
    for name, speed in speeds.items():
        assert abs(found[name][1] - found[reference][1] * speed / speeds[reference]) <= 1, name


def test_each_variant_of_the_screen_is_the_faithful_preset_plus_its_own_changes_at_equal_steps():
    assert {steps for _, steps in changes("quality-cifar100.yaml").values()} == {100}


def test_each_variant_of_the_equal_time_table_trains_for_the_faithful_epochs_time():
    found = changes("quality-cifar100-equal-time.yaml")
    assert found["faithful"] == (set(), 390)
    for speeds in (SCREEN_IMAGES_PER_SECOND, *map(means, SPEED_RUNS_IMAGES_PER_SECOND)):
        assert_steps_follow_speed(found, speeds)
    screen = changes("quality-cifar100.yaml")
    for name in ("perceptual", "diffaugment", "class-prior"):  # the screen's single changes, at equal time
        assert found[name][0] == screen[name][0], name
    assert found["combined-no-perceptual"] == ({key for key in screen["combined"][0] if "perceptual" not in key},
                                               found["resize"][1])
    assert found["ema"] == ({"train.ema_decay"}, 390)  # one average of G's weights per step: no step cost
    assert found["resnet"][0] == {"model.arch"}
    assert found["resnet-narrow"][0] == {"model.arch", "model.channels", "model.d_channels"}
    head = {"model.d_classifier", "loss.class_weight"}  # a linear layer on features D computes anyway: no step cost
    assert found["class-head"] == (head, 390)
    assert found["plus-class-head"] == (found["combined-no-perceptual"][0] | head, found["resize"][1])
    assert found["plus-class-head-light"] == found["plus-class-head"]
    assert found["combined-class-head"] == (found["combined"][0] | head, found["combined"][1])

    split = {"model.split_bn_stats"}  # where G keeps running statistics: no step cost, the same training
    assert found["plus-class-head-split"] == (found["plus-class-head"][0] | split, found["plus-class-head"][1])
    assert found["combined-class-head-split"] == (found["combined-class-head"][0] | split,
                                                  found["combined-class-head"][1])
    assert found["combined-class-head-split-all"] == (found["combined-class-head-split"][0] | {"model.sample_bn_stats"},
                                                      found["combined-class-head"][1])
    assert found["combined-class-head-split-all-diffaugment"][0] == (found["combined-class-head-split-all"][0]
                                                                     | {"loss.d_augment"})


def test_the_finalists_train_for_three_faithful_epochs_time_and_log_their_quality_curves():
    found, one_epoch = changes("quality-cifar100-3-epochs.yaml"), changes("quality-cifar100-equal-time.yaml")
    assert found.keys() == {"faithful", "combined-class-head-split"}
    for name, (keys, steps) in found.items():
        assert (keys, steps) == (one_epoch[name][0], 3 * one_epoch[name][1]), name
    grid = load_grid(str(BENCHMARKS / "quality-cifar100-3-epochs.yaml"))
    assert grid.overrides == {"evaluation.quality_classifier": "runs/classifier-cifar100-seed1.pt"}


def test_the_beta_vae_variants_train_for_one_epoch_of_the_regularised_presets_time():
    found = changes("quality-cifar10-equal-time.yaml", "regularized", "vae-cifar10-regularized")
    assert found.keys() == {"regularized", "resize", "perceptual", "ema", "all", "resize-perceptual"}
    assert found["regularized"] == (set(), 390)
    assert_steps_follow_speed(found, means(BETA_VAE_IMAGES_PER_SECOND))
    perceptual = {"loss.perceptual_weight", "loss.perceptual_weights"}
    assert found["resize"][0] == {"model.upsample"}
    assert found["perceptual"][0] == perceptual
    assert found["ema"] == ({"train.ema_decay"}, 390)  # one average of the decoder's weights per step: no step cost
    assert found["all"][0] == {"model.upsample", "train.ema_decay"} | perceptual
    assert found["resize-perceptual"] == (found["all"][0] - {"train.ema_decay"}, found["all"][1])
