"""OUT/report.md and OUT/report.html of `vaegan reproduce`: per experiment its facts, one row per claim (the
reference's words, the measured value, the verdict and its rule), its tables and figures. OUT is the user's
folder: a report.md or report.html there that vaegan did not write is never overwritten."""

from __future__ import annotations

import html
import os
from pathlib import Path

from vaegan.reproduce.experiments import Outcome
from vaegan.runs import OutputFolder
from vaegan.viz.report import figure_html, html_page


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def write_markdown(path: Path, header: list[str], outcomes: list[Outcome]) -> Path:
    lines = ["# vaegan reproduce", "", *(f"- {line}" for line in header)]
    for outcome in outcomes:
        lines += ["", f"## {outcome.title}", "", *(f"- {fact}" for fact in outcome.facts), "",
                  "| claim (reference) | measured | verdict | rule |", "|---|---|---|---|"]
        lines += [f"| {_cell(f.claim)} | {_cell(f.measured)} | **{f.verdict}** | {_cell(f.rule)} |"
                  for f in outcome.findings]
        lines += ["", *(f"- table: {os.path.relpath(t, path.parent)}" for t in outcome.tables)]
        lines += [f"- figure: {os.path.relpath(p, path.parent)}: {caption}" for p, caption in outcome.figures]
    OutputFolder(path.parent).write(path, "\n".join(lines) + "\n")
    return path


def write_html(path: Path, header: list[str], outcomes: list[Outcome]) -> Path:
    body = ["<h1>vaegan reproduce</h1><ul>", *(f"<li>{html.escape(line)}</li>" for line in header), "</ul>"]
    for outcome in outcomes:
        rows = "".join(f"<tr><td>{html.escape(f.claim)}</td><td>{html.escape(f.measured)}</td>"
                       f"<td class=verdict><b>{html.escape(f.verdict)}</b></td><td>{html.escape(f.rule)}</td></tr>"
                       for f in outcome.findings)
        body += [f"<h2>{html.escape(outcome.title)}</h2><ul>",
                 *(f"<li>{html.escape(fact)}</li>" for fact in outcome.facts), "</ul>",
                 "<div class=scroll><table><tr><th>claim (reference)</th><th>measured</th><th>verdict</th>"
                 f"<th>rule</th></tr>{rows}</table></div><ul>",
                 *(f"<li><a href=\"{html.escape(os.path.relpath(t, path.parent))}\">{html.escape(t.name)}</a></li>"
                   for t in outcome.tables), "</ul>",
                 *(figure_html(path, p, caption) for p, caption in outcome.figures)]
    OutputFolder(path.parent).write(path, html_page("vaegan reproduce", "".join(body)))
    return path
