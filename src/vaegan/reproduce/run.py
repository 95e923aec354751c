"""One `vaegan reproduce` invocation: the chosen experiments, then the two report pages."""

from __future__ import annotations

import time
from pathlib import Path

from vaegan.ablation.runner import check_measure_images
from vaegan.reproduce.experiments import EXPERIMENTS, Options, Outcome, check_classifiers
from vaegan.reproduce.report import write_html, write_markdown
from vaegan.runs import OutputFolder, RunDir


def reproduce(which: str, options: Options) -> tuple[Path, Path, list[Outcome]]:
    """Run `which` experiment (or all), then write OUT/report.md and OUT/report.html; returns their paths and
    the outcomes. Rerunning continues a killed reproduction and rewrites the reports."""
    started = time.monotonic()
    names = list(EXPERIMENTS) if which == "all" else [which]
    check_classifiers(names, options)
    check_measure_images(options.measure_images)
    pages = RunDir(options.out)
    OutputFolder(options.out).check(pages.report_markdown, pages.report)  # refused before any work, not after
    outcomes = [EXPERIMENTS[name](options) for name in names]
    header = [f"budget {options.budget:g} of the references' 20-epoch schedules, {options.seeds} seed(s)",
              f"wall time of this invocation {(time.monotonic() - started) / 60:.1f} min (finished parts of an "
              "earlier invocation are reused, not retimed)",
              "overrides applied to every run: " + (", ".join(f"{k}={v}" for k, v in options.overrides.items())
                                                    or "none")]
    return (write_markdown(pages.report_markdown, header, outcomes), write_html(pages.report, header, outcomes),
            outcomes)
