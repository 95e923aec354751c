"""Curves from metrics.jsonl: the losses of a run (one panel per quantity, smoothed, with the raw values faint
behind), and the sample quality of one or more runs (`quality` records) against images seen and training time."""

from __future__ import annotations

import math
from typing import Any

from matplotlib.figure import Figure

# (key in the records, panel title), in display order; panels without data are left out
PANELS = (("loss", "E/G objective"), ("recon", "reconstruction"), ("mse_per_pixel", "MSE per pixel"),
          ("kl", "KL"), ("d_loss", "D loss"), ("gan", "G adversarial loss"), ("d_real", "D(real) mean logit"),
          ("d_fake", "D(fake) mean logit"), ("feature", "feature matching"), ("class", "G class term"),
          ("d_class", "D class term (real images)"))
RAW, SMOOTH, TEST = "#9ab7d3", "#1f5f99", "#d2691e"
QUALITY_PANELS = (("fcd", "FCD (lower is better)"), ("cc", "class consistency"))
QUALITY_AXES = (("images", "images seen"), ("seconds", "training seconds"))


def smooth(values: list[float]) -> list[float]:
    """Debiased exponential moving average whose span grows with the length (about 1/30 of it)."""
    weight = 0.0 if len(values) < 30 else 1 - 30 / len(values)
    out, average, norm = [], 0.0, 0.0
    for v in values:
        average = weight * average + (1 - weight) * v
        norm = weight * norm + (1 - weight)
        out.append(average / norm)
    return out


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _series(records: list[dict[str, Any]], key: str, x: str = "step") -> tuple[list[float], list[float]]:
    pairs = [(r[x], r[key]) for r in records if _is_number(r.get(key)) and _is_number(r.get(x))]
    return [s for s, _ in pairs], [v for _, v in pairs]


def quality_records(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in records if r.get("kind") == "quality"]


def quality_figure(runs: dict[str, list[dict[str, Any]]]) -> Figure:
    """FCD and class consistency of each run (name -> its records) against images seen and training seconds:
    one line per run, so recipes of different step costs compare at equal images and at equal time."""
    runs = {name: quality_records(records) for name, records in runs.items()}
    panels = [(key, name) for key, name in QUALITY_PANELS if any(_series(r, key)[0] for r in runs.values())]
    if not panels:
        raise ValueError("no quality records to plot: train with evaluation.quality_classifier=FILE")
    figure = Figure(figsize=(4.6 * len(QUALITY_AXES), 3.2 * len(panels)), layout="constrained")
    for i, (key, name) in enumerate(panels):
        for j, (x, x_name) in enumerate(QUALITY_AXES):
            axes = figure.add_subplot(len(panels), len(QUALITY_AXES), i * len(QUALITY_AXES) + j + 1)
            for run, records in runs.items():
                xs, values = _series(records, key, x)
                if xs:
                    axes.plot(xs, values, "o-", markersize=3.5, linewidth=1.2, label=run)
            axes.set_title(name, fontsize=10)
            axes.set_xlabel(x_name, fontsize=8)
            axes.tick_params(labelsize=8)
            axes.grid(alpha=0.25)
            axes.legend(fontsize=7, frameon=False)
    return figure


def curves_figure(records: list[dict[str, Any]], title: str = "") -> Figure:
    """The curves of a run's metrics records."""
    train = [r for r in records if r.get("kind") == "train"]
    test = [r for r in records if r.get("kind") == "test"]
    panels = [(key, name) for key, name in PANELS if _series(train, key)[0]]
    if not panels:
        raise ValueError("no training records to plot yet")
    cols = min(3, len(panels))
    rows = -(-len(panels) // cols)
    figure = Figure(figsize=(4.2 * cols, 3.0 * rows), layout="constrained")
    for i, (key, name) in enumerate(panels):
        axes = figure.add_subplot(rows, cols, i + 1)
        steps, values = _series(train, key)
        axes.plot(steps, values, color=RAW, linewidth=0.7, alpha=0.6)
        axes.plot(steps, smooth(values), color=SMOOTH, linewidth=1.6, label="train")
        test_steps, test_values = _series(test, key)
        if test_steps:
            axes.plot(test_steps, test_values, "o-", color=TEST, markersize=3.5, linewidth=1.2, label="test")
            axes.legend(fontsize=8, frameon=False)
        axes.set_title(name, fontsize=10)
        axes.set_xlabel("step", fontsize=8)
        axes.tick_params(labelsize=8)
        axes.grid(alpha=0.25)
    if title:
        figure.suptitle(title, fontsize=11)
    return figure
