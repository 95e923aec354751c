"""The references' claims, each judged from measured numbers by a rule stated beside it.

A rule returns a `Finding`: the claim in the reference's words, what was measured, the verdict and the rule
itself. Rules are pure functions of numbers (per-epoch means of logged values, eval.json metrics, ablation
cells), so a reviewer can check each verdict by hand; `experiments.py` gathers the numbers.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

SUPPORTED, NOT_SUPPORTED, NOT_TESTABLE = "supported", "not supported", "not testable at this budget"
MIN_EPOCHS_FOR_TREND = 3  # a trend over fewer per-epoch means is noise
STABLE_AFTER_EPOCH = 5  # "stable after ~5 epochs"


@dataclass(frozen=True)
class Finding:
    claim: str  # the reference's words
    measured: str
    verdict: str
    rule: str


@dataclass(frozen=True)
class Reading:
    """One way to read an ambiguous quantity of the reference (what reduction gives 0.41?)."""

    name: str
    value: float


def epoch_means(records: Sequence[dict], key: str) -> list[float]:
    """Per-epoch means of a logged train value, in epoch order (epochs where it was never logged are left out)."""
    by_epoch: dict[int, list[float]] = {}
    for record in records:
        value = record.get(key)
        if record.get("kind") == "train" and isinstance(value, (int, float)) and math.isfinite(value):
            by_epoch.setdefault(record["epoch"], []).append(value)
    return [statistics.fmean(by_epoch[epoch]) for epoch in sorted(by_epoch)]


def rank_correlation(values: Sequence[float]) -> float:
    """Spearman's correlation of `values` with their position: -1 falls steadily, +1 rises steadily."""
    n = len(values)
    ranks = [sorted(range(n), key=lambda i: values[i]).index(i) for i in range(n)]
    return 1 - 6 * sum((r - i) ** 2 for i, r in enumerate(ranks)) / (n * (n * n - 1))


def _series(values: Sequence[float]) -> str:
    return ", ".join(f"{v:.4g}" for v in values)


def decreases_slowly(claim: str, kl_by_epoch: Sequence[float]) -> Finding:
    rule = (f"supported when the per-epoch means fall (Spearman rank correlation with the epoch <= -0.5) and no "
            f"epoch drops by more than half; needs {MIN_EPOCHS_FOR_TREND}+ epochs")
    if len(kl_by_epoch) < MIN_EPOCHS_FOR_TREND:
        return Finding(claim, f"per-epoch KL {_series(kl_by_epoch)}", NOT_TESTABLE, rule)
    rho = rank_correlation(kl_by_epoch)
    slow = all(b >= 0.5 * a for a, b in zip(kl_by_epoch, kl_by_epoch[1:]))
    return Finding(claim, f"per-epoch KL {_series(kl_by_epoch)}; rank correlation {rho:+.2f}",
                   SUPPORTED if rho <= -0.5 and slow else NOT_SUPPORTED, rule)


def stable_in_band(claim: str, readings: Sequence[Reading], chosen: str, low: float, high: float,
                   by_epoch: Sequence[float]) -> Finding:
    """`by_epoch`: the per-epoch means of the chosen reading; the last half of the epochs is judged."""
    rule = (f"reading '{chosen}' (the reference's most likely one): supported when every per-epoch mean of the "
            f"last half of training lies in [{low:g}, {high:g}] widened by 5%; needs 2+ epochs")
    shown = "; ".join(f"{r.name} {r.value:.4g}" for r in readings)
    if len(by_epoch) < 2:
        return Finding(claim, f"last values: {shown}", NOT_TESTABLE, rule)
    tail = by_epoch[len(by_epoch) // 2:]
    inside = all(low * 0.95 <= v <= high * 1.05 for v in tail)
    return Finding(claim, f"last values: {shown}; {chosen} per epoch (last half) {_series(tail)}",
                   SUPPORTED if inside else NOT_SUPPORTED, rule)


def falls_from_to(claim: str, by_epoch: Sequence[float], start: float, end: float) -> Finding:
    rule = (f"supported when the last epoch's mean is at most 0.7x the first's (a fall; the reference went "
            f"{start:g} -> {end:g}); needs 2+ epochs")
    if len(by_epoch) < 2:
        return Finding(claim, f"per-epoch {_series(by_epoch)}", NOT_TESTABLE, rule)
    return Finding(claim, f"first epoch {by_epoch[0]:.4g} -> last epoch {by_epoch[-1]:.4g}",
                   SUPPORTED if by_epoch[-1] <= 0.7 * by_epoch[0] else NOT_SUPPORTED, rule)


def oscillates_between(claim: str, readings: dict[str, Sequence[float]], chosen: str, low: float,
                       high: float) -> Finding:
    """`readings`: per-epoch means of each candidate quantity; `chosen` is judged, the others are shown."""
    rule = (f"reading '{chosen}': supported when the per-epoch means after the first epoch stay in "
            f"[{low:g}, {high:g}]; needs 2+ epochs")
    shown = "; ".join(f"{name} {min(v):.3g}-{max(v):.3g}" for name, v in readings.items() if v)
    values = list(readings.get(chosen, []))[1:]
    if not values:
        return Finding(claim, f"per-epoch ranges: {shown}", NOT_TESTABLE, rule)
    inside = all(low <= v <= high for v in values)
    return Finding(claim, f"per-epoch ranges: {shown}", SUPPORTED if inside else NOT_SUPPORTED, rule)


def no_divergence(claim: str, nonfinite_steps: int, loss_by_epoch: Sequence[float]) -> Finding:
    rule = "supported when no step was skipped as non-finite and no epoch's mean loss exceeds 10x the first's"
    blown = bool(loss_by_epoch) and max(loss_by_epoch) > 10 * abs(loss_by_epoch[0])
    verdict = SUPPORTED if nonfinite_steps == 0 and not blown else NOT_SUPPORTED
    return Finding(claim, f"{nonfinite_steps} non-finite steps; per-epoch loss {_series(loss_by_epoch)}",
                   verdict, rule)


def stable_after(claim: str, loss_by_epoch: Sequence[float]) -> Finding:
    rule = (f"supported when the per-epoch mean losses from epoch {STABLE_AFTER_EPOCH + 1} on vary by less than "
            f"10% (std / mean); needs {STABLE_AFTER_EPOCH + 3}+ epochs")
    tail = list(loss_by_epoch[STABLE_AFTER_EPOCH:])
    if len(tail) < 3:
        return Finding(claim, f"{len(loss_by_epoch)} epochs", NOT_TESTABLE, rule)
    spread = statistics.stdev(tail) / abs(statistics.fmean(tail))
    return Finding(claim, f"std / mean of per-epoch loss from epoch {STABLE_AFTER_EPOCH + 1}: {spread:.3f}",
                   SUPPORTED if spread < 0.1 else NOT_SUPPORTED, rule)


def at_least(claim: str, what: str, value: float | None, threshold: float, rule_note: str = "") -> Finding:
    rule = f"supported when {what} >= {threshold:.3g}{rule_note}"
    if value is None:
        return Finding(claim, f"{what}: not measured", NOT_TESTABLE, rule + " (not measured: see the note)")
    return Finding(claim, f"{what} {value:.4g}", SUPPORTED if value >= threshold else NOT_SUPPORTED, rule)


def at_most(claim: str, what: str, value: float | None, threshold: float, rule_note: str = "") -> Finding:
    rule = f"supported when {what} <= {threshold:.3g}{rule_note}"
    if value is None:
        return Finding(claim, f"{what}: not measured", NOT_TESTABLE, rule + " (not measured: see the note)")
    return Finding(claim, f"{what} {value:.4g}", SUPPORTED if value <= threshold else NOT_SUPPORTED, rule)


def near_value(claim: str, readings: Sequence[Reading], chosen: str, reference: float) -> Finding:
    """A single number of the reference, read several ways; the chosen reading must be within 25% of it."""
    rule = f"reading '{chosen}': supported when within 25% of {reference:g}; the closest reading is named"
    values = {r.name: r.value for r in readings}
    closest = min(readings, key=lambda r: abs(math.log(max(r.value, 1e-12) / reference)))
    shown = "; ".join(f"{r.name} {r.value:.4g}" for r in readings) + f" (closest: {closest.name})"
    verdict = SUPPORTED if abs(values[chosen] - reference) <= 0.25 * reference else NOT_SUPPORTED
    return Finding(claim, shown, verdict, rule)


def better_in(claim: str, what: str, better: Sequence[float], worse: Sequence[float], better_name: str,
              worse_name: str, lower: bool = True) -> Finding:
    """Paired by seed: supported when `better` beats `worse` (is lower, or higher with lower=False) by more
    than the seeds' spread of the difference (one seed: at all)."""
    sign = "negative" if lower else "positive"
    rule = (f"{what}, {'lower' if lower else 'higher'} is better: supported when {better_name} - {worse_name}, "
            f"paired by seed, is {sign} by more than its standard deviation over seeds (one seed: {sign})")
    diffs = [b - w for b, w in zip(better, worse)]
    if not diffs:
        return Finding(claim, f"{what}: not measured", NOT_TESTABLE, rule)
    mean = statistics.fmean(diffs)
    spread = statistics.stdev(diffs) if len(diffs) > 1 else 0.0
    gain = -mean if lower else mean
    return Finding(claim, f"{what}: {better_name} - {worse_name} = {mean:+.4g} +- {spread:.2g} over {len(diffs)} "
                   f"seed(s)", SUPPORTED if gain > 0 and gain > spread else NOT_SUPPORTED, rule)


def overfits(train_by_epoch: Sequence[float], test_by_epoch: Sequence[float]) -> bool:
    """Visible overfitting: over the second half of training the test loss rose by more than 2% from its
    lowest point while the train loss fell."""
    if len(train_by_epoch) < 4 or len(test_by_epoch) < 4:
        return False
    half = len(test_by_epoch) // 2
    lowest = min(test_by_epoch)
    return test_by_epoch[-1] > 1.02 * lowest and test_by_epoch.index(lowest) < len(test_by_epoch) - 1 \
        and train_by_epoch[-1] < train_by_epoch[half]
