"""Each verdict rule on hand-made numbers: supported, not supported, and not testable at this budget."""

import pytest

from vaegan.reproduce import claims as c


def verdict(finding: c.Finding) -> str:
    assert finding.rule and finding.measured  # every row states its rule and its measurement
    return finding.verdict


def test_per_epoch_means_skip_test_records_and_non_finite_values():
    records = [{"kind": "train", "epoch": 0, "kl": 4.0}, {"kind": "train", "epoch": 0, "kl": 2.0},
               {"kind": "test", "epoch": 0, "kl": 99.0}, {"kind": "train", "epoch": 1, "kl": float("nan")},
               {"kind": "train", "epoch": 1, "kl": 1.0}, {"kind": "train", "epoch": 2}]
    assert c.epoch_means(records, "kl") == [3.0, 1.0]


def test_a_slow_decrease_needs_a_falling_trend_without_halving_and_three_epochs():
    assert verdict(c.decreases_slowly("KL", [5.0, 4.6, 4.4, 4.1])) == c.SUPPORTED
    assert verdict(c.decreases_slowly("KL", [5.0, 1.0, 0.9, 0.8])) == c.NOT_SUPPORTED  # a crash, not slow
    assert verdict(c.decreases_slowly("KL", [4.0, 4.5, 5.0])) == c.NOT_SUPPORTED
    assert verdict(c.decreases_slowly("KL", [5.0, 4.0])) == c.NOT_TESTABLE


def test_a_band_is_judged_on_the_last_half_with_all_readings_shown():
    readings = [c.Reading("mean", 0.41), c.Reading("sum", 1259.0)]
    inside = c.stable_in_band("recon", readings, "mean", 0.39, 0.43, [0.6, 0.5, 0.42, 0.40])
    assert verdict(inside) == c.SUPPORTED and "sum 1259" in inside.measured
    assert verdict(c.stable_in_band("recon", readings, "mean", 0.39, 0.43, [0.6, 0.5, 0.3, 0.2])) == c.NOT_SUPPORTED
    assert verdict(c.stable_in_band("recon", readings, "mean", 0.39, 0.43, [0.4])) == c.NOT_TESTABLE


def test_falls_oscillates_and_near_value():
    assert verdict(c.falls_from_to("D", [2.5, 1.8, 1.2], 2.6, 1.1)) == c.SUPPORTED
    assert verdict(c.falls_from_to("D", [1.4, 1.3], 2.6, 1.1)) == c.NOT_SUPPORTED
    assert verdict(c.falls_from_to("D", [1.4], 2.6, 1.1)) == c.NOT_TESTABLE
    readings = {"gan": [9.0, 6.0, 7.5, 5.2], "loss": [0.5, 0.4, 0.4, 0.4]}
    assert verdict(c.oscillates_between("G", readings, "gan", 5, 8)) == c.SUPPORTED  # the first epoch is free
    assert verdict(c.oscillates_between("G", readings, "loss", 5, 8)) == c.NOT_SUPPORTED
    assert verdict(c.oscillates_between("G", {"gan": [6.0]}, "gan", 5, 8)) == c.NOT_TESTABLE
    readings = [c.Reading("per pixel", 0.45), c.Reading("on [0, 1]", 0.11), c.Reading("per image", 1382.0)]
    found = c.near_value("batch MSE", readings, "per pixel", 0.4103)
    assert verdict(found) == c.SUPPORTED and "closest: per pixel" in found.measured
    assert verdict(c.near_value("batch MSE", readings, "on [0, 1]", 0.4103)) == c.NOT_SUPPORTED


def test_divergence_stability_and_thresholds():
    assert verdict(c.no_divergence("div", 0, [1.0, 0.9, 0.8])) == c.SUPPORTED
    assert verdict(c.no_divergence("div", 3, [1.0, 0.9])) == c.NOT_SUPPORTED
    assert verdict(c.no_divergence("div", 0, [1.0, 50.0])) == c.NOT_SUPPORTED
    steady = [2.0, 1.5, 1.2, 1.1, 1.0, 1.0, 1.02, 0.98, 1.01]
    assert verdict(c.stable_after("stable", steady)) == c.SUPPORTED
    assert verdict(c.stable_after("stable", steady[:5] + [1.0, 2.0, 0.5])) == c.NOT_SUPPORTED
    assert verdict(c.stable_after("stable", steady[:6])) == c.NOT_TESTABLE
    assert verdict(c.at_least("collapse", "spread", 0.8, 0.5)) == c.SUPPORTED
    assert verdict(c.at_least("collapse", "spread", 0.1, 0.5)) == c.NOT_SUPPORTED
    assert verdict(c.at_least("collapse", "spread", None, 0.5)) == c.NOT_TESTABLE
    assert verdict(c.at_most("smooth", "ratio", 1.4, 3.0)) == c.SUPPORTED
    assert verdict(c.at_most("smooth", "ratio", 7.0, 3.0)) == c.NOT_SUPPORTED


@pytest.mark.parametrize("better, worse, lower, expected", [
    ([0.10, 0.11], [0.20, 0.19], True, c.SUPPORTED),
    ([0.10, 0.30], [0.20, 0.19], True, c.NOT_SUPPORTED),  # lower on average, but not beyond the seeds' spread
    ([0.5], [0.4], False, c.SUPPORTED),
    ([], [], True, c.NOT_TESTABLE),
])
def test_paired_seed_comparisons(better, worse, lower, expected):
    assert verdict(c.better_in("claim", "what", better, worse, "all", "none", lower)) == expected


def test_overfitting_is_a_rising_test_loss_while_the_train_loss_falls():
    assert c.overfits([3.0, 2.0, 1.5, 1.0, 0.7, 0.5], [3.0, 2.5, 2.4, 2.5, 2.6, 2.8])
    assert not c.overfits([3.0, 2.0, 1.5, 1.0, 0.7, 0.5], [3.0, 2.5, 2.4, 2.3, 2.2, 2.1])
    assert not c.overfits([3.0, 2.0], [3.0, 3.5])  # too short to tell
