"""The grid's table (mean +- std over seeds) as Markdown, CSV and HTML, and one derived line per claim. They
are written into the user's --out folder, where tables vaegan did not write are never overwritten."""

from __future__ import annotations

import csv
import html
import io
import statistics
from pathlib import Path

from vaegan.ablation.grids import Claim, Grid
from vaegan.ablation.runner import Cell
from vaegan.runs import OutputFolder, RunDir
from vaegan.viz.report import figure_html, html_page

COLUMNS = [("train_mse", "train MSE/px"), ("test_mse", "test MSE/px"), ("gap", "gap (test-train)"),
           ("kl", "KL (nats)"), ("test_nelbo", "test -ELBO"), ("loss_std", "loss std, last 20%"),
           ("nonfinite", "non-finite steps"), ("knn", "5-NN acc. of means"), ("fcd", "FCD"),
           ("fcd_floor", "FCD floor (train vs test)"), ("fcd_intra", "intra-class FCD"), ("cc", "class consistency"),
           ("div", "div"), ("sharp", "sharpness samples"), ("sharp_recon", "sharpness recon"), ("fid", "FID"),
           ("images_per_second", "images/s"), ("wall_seconds", "wall s")]


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def aggregate(cells: list[Cell]) -> dict[str, dict[str, tuple[float, float]]]:
    """variant -> column -> (mean, std) over its seeds, in the order variants first appear."""
    table: dict[str, dict[str, tuple[float, float]]] = {}
    for variant in dict.fromkeys(c.variant for c in cells):
        mine = [c.values for c in cells if c.variant == variant and c.error is None]  # failed cells are listed apart
        table[variant] = {key: mean_std([v[key] for v in mine]) for key, _ in COLUMNS
                          if mine and all(key in v for v in mine)}
    return table


def claim_line(claim: Claim, cells: list[Cell]) -> str:
    """'<claim>: yes/no, by X +- Y' from the per-seed differences better - worse (paired by seed)."""
    by_seed = {(c.variant, c.seed): c.values.get(claim.column) for c in cells}
    seeds = sorted({c.seed for c in cells})
    diffs = [by_seed[(claim.better, s)] - by_seed[(claim.worse, s)] for s in seeds
             if by_seed.get((claim.better, s)) is not None and by_seed.get((claim.worse, s)) is not None]
    if not diffs:
        return f"{claim.text}: not measured"
    mean, std = mean_std(diffs)
    verdict = "yes" if mean < 0 else "no"
    return (f"{claim.text}: {verdict}, {claim.better} - {claim.worse} = {mean:+.4g} +- {std:.2g} "
            f"(over {len(diffs)} seed{'s' if len(diffs) > 1 else ''})")


def _cell(mean_and_std: tuple[float, float] | None) -> str:
    return "-" if mean_and_std is None else f"{mean_and_std[0]:.4g} ± {mean_and_std[1]:.2g}"


def check_tables(out: Path) -> dict[str, Path]:
    """The three tables' paths in `out`, after refusing (in one line) any of them that vaegan did not write:
    called before a grid trains, so that the refusal costs no work, and again before writing."""
    paths = {"md": out / "table.md", "csv": out / "table.csv", "html": out / "table.html"}
    OutputFolder(out).check(*paths.values())
    return paths


def write_tables(grid: Grid, cells: list[Cell], out: Path, budget_line: str) -> dict[str, Path]:
    """DIR/table.md, table.csv and table.html (all three refused, before any is written, if one is not
    vaegan's); returns their paths."""
    table = aggregate(cells)
    columns = [(key, title) for key, title in COLUMNS if any(key in row for row in table.values())]
    seeds = len({c.seed for c in cells})
    claims = [claim_line(claim, cells) for claim in grid.claims]
    claims += [f"{c.variant} seed {c.seed}: FAILED ({c.error})" for c in cells if c.error]
    header = f"Grid `{grid.name}`: mean ± std over {seeds} seed{'s' if seeds > 1 else ''}; {budget_line}."

    md = [header, "", "| variant | " + " | ".join(t for _, t in columns) + " |",
          "|---" * (len(columns) + 1) + "|"]
    md += [f"| {variant} | " + " | ".join(_cell(row.get(k)) for k, _ in columns) + " |"
           for variant, row in table.items()]
    if claims:
        md += ["", *[f"- {line}" for line in claims]]
    paths = check_tables(out)
    folder = OutputFolder(out)
    folder.write(paths["md"], "\n".join(md) + "\n")

    text = io.StringIO(newline="")
    writer = csv.writer(text)
    writer.writerow(["variant"] + [f"{k}_{stat}" for k, _ in columns for stat in ("mean", "std")])
    for variant, row in table.items():
        values = []
        for key, _ in columns:
            values += [f"{v:.6g}" for v in row[key]] if key in row else ["", ""]
        writer.writerow([variant, *values])
    folder.write(paths["csv"], text.getvalue())

    rows = "".join(f"<tr><th>{html.escape(variant)}</th>" + "".join(f"<td class=num>{_cell(row.get(k))}</td>"
                                                                        for k, _ in columns) + "</tr>"
                   for variant, row in table.items())
    grids = []
    for variant in table:
        sample = next((RunDir(c.run_dir).sample_grid("final") for c in cells if c.variant == variant), None)
        if sample is not None and sample.is_file():
            grids.append(figure_html(paths["html"], sample, f"{variant} (seed 0)"))
    folder.write(paths["html"], html_page(
        f"vaegan ablation: {grid.name}",
        f"<h1>{html.escape(grid.name)}</h1><p class=sub>{html.escape(header)}</p><div class=scroll><table><tr>"
        "<th>variant</th>" + "".join(f"<th>{html.escape(t)}</th>" for _, t in columns) + f"</tr>{rows}</table></div>"
        + ("<ul>" + "".join(f"<li>{html.escape(line)}</li>" for line in claims) + "</ul>" if claims else "")
        + f"<div class=runs>{''.join(grids)}</div>"))
    return paths
