"""One HTML page per run (`vaegan report`) and one for several runs side by side (`vaegan compare`).

Pages are self-contained for viewing offline: plain HTML and CSS, images as PNG files beside the page and
referenced by relative paths, no scripts, no fonts or styles from the network.
"""

from __future__ import annotations

import html
import os
from pathlib import Path
from typing import Any

import yaml

from vaegan.evaluation.latent import KNN_K
from vaegan.evaluation.run import LoadedRun, metrics_summary
from vaegan.runs import OutputFolder
from vaegan.viz.curves import curves_figure, quality_figure, quality_records
from vaegan.viz.figures import interpolation_figure, interpolation_paths, reconstruction_figure
from vaegan.viz.grid import save_figure, save_image
from vaegan.viz.latent_map import latent_map_figure
from vaegan.viz.samples import save_sample_grid

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto; padding: 1rem;
       max-width: 1100px; color: #1d2430; line-height: 1.45; }
h1 { font-size: 1.5rem; margin-bottom: .2rem; } h2 { font-size: 1.15rem; margin-top: 2rem;
     border-bottom: 1px solid #dde3ea; padding-bottom: .2rem; }
.sub { color: #5a6678; margin-top: 0; }
table { border-collapse: collapse; font-size: .9rem; margin: .5rem 0; }
td, th { border-bottom: 1px solid #e6eaf0; padding: .25rem .7rem; text-align: left; }
th { background: #f3f6f9; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 1rem 0; } figcaption { color: #5a6678; font-size: .85rem; }
img { max-width: 100%; height: auto; image-rendering: pixelated; border: 1px solid #e6eaf0; }
pre { background: #f6f8fa; padding: .7rem; overflow-x: auto; font-size: .8rem; }
.runs { display: grid; grid-template-columns: repeat(auto-fit, minmax(300px, 1fr)); gap: 1rem; }
.scroll { overflow-x: auto; }
"""
EVALUATED = ("fid", "fcd", "cc")  # eval.json values shown in the comparison table
METRIC_NAMES = {"mse_per_pixel": "MSE per pixel", "recon": "reconstruction term", "kl": "KL term",
                "loss": "objective", "d_loss": "D loss", "gan": "G adversarial loss", "d_real": "D(real) logit",
                "d_fake": "D(fake) logit", "feature": "feature matching", "class": "G class term",
                "d_class": "D class term (real images)", "nonfinite_steps": "non-finite steps"}


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return html.escape(str(value))


def _table(rows: list[tuple[str, Any]]) -> str:
    body = "".join(f"<tr><th>{html.escape(k)}</th><td class=num>{_fmt(v)}</td></tr>" for k, v in rows)
    return f"<div class=scroll><table>{body}</table></div>"


def figure_html(page: Path, image: Path, caption: str) -> str:
    src = html.escape(os.path.relpath(image, page.parent))
    return (f"<figure><img src=\"{src}\" alt=\"{html.escape(caption)}\" loading=lazy>"
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def html_page(title: str, body: str) -> str:
    return (f"<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
            f"<meta name=viewport content=\"width=device-width, initial-scale=1\">"
            f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>{body}</body></html>\n")


def run_figures(run: LoadedRun, folder: Path, latent_images: int = 2000, seed: int = 0) -> list[tuple[Path, str]]:
    """Every figure that applies to the run's model, written into `folder`: (path, caption) pairs."""
    model, test = run.model, run.dataset("test")
    figures = []
    records = run.rundir.records()
    if any(r.get("kind") == "train" for r in records):
        curves = curves_figure(records, title=run.run_dir.name)
        figures.append((save_figure(curves, folder / "curves.png"),
                        "Loss curves: smoothed (dark) over the raw per-step values (faint); test-set points per "
                        "epoch."))
    if quality_records(records):
        figures.append((save_figure(quality_figure({run.run_dir.name: records}), folder / "quality.png"),
                        "Sample quality at each epoch end (evaluation.quality_classifier): FCD and class "
                        "consistency against images seen and training seconds."))
    kind = "class-conditional samples, rows = classes" if model.conditional else "samples"
    figures.append((save_sample_grid(model, folder / "samples.png", test.class_names, seed=seed),
                    f"{kind}, columns = one fixed z each (seed {seed}); "
                    f"{'EMA' if run.uses_ema else 'raw'} generator."))
    if model.encoder is None:
        return figures
    image, recon = reconstruction_figure(model, test, 16, run.device)
    figures.append((save_image(image, folder / "reconstructions-test.png"),
                    f"Test images over their reconstructions; per-pixel MSE {recon['batch_mse_per_pixel']:.4f} "
                    f"on these, {recon['split_mse_per_pixel']:.4f} on all {recon['images']} test images."))
    paths = interpolation_paths(folder / "interpolation.png", ["latent", "label"])
    for kind, image in interpolation_figure(model, test, 4, 10, "linear", seed, run.device).items():
        figures.append((save_image(image, paths[kind]), "Latent interpolation between two encoded test images "
                        "(linear)." if kind == "latent" else
                        "Label path at fixed z: the first image's mean decoded between the two labels."))
    if len(test) <= KNN_K:  # a test split this small (own data) makes no map worth drawing
        return figures
    latent_map, latent = latent_map_figure(model, test, latent_images, "pca", run.device, seed)
    figures.append((save_figure(latent_map, folder / "latent-map-pca.png"),
                    f"PCA of {latent['images']} test-set posterior means; 5-NN accuracy "
                    f"{latent['knn_accuracy']:.1%}."))
    return figures


def write_report(run: LoadedRun, latent_images: int = 2000) -> Path:
    """RUN/report.html with every figure (in RUN/figures/), the metrics, the config and the hardware."""
    page = run.rundir.report
    figures = run_figures(run, run.rundir.figures, latent_images)
    numbers = metrics_summary(run.run_dir)
    summary = numbers["summary"]
    cfg = run.cfg
    speed = [("steps", numbers["steps"]), ("epochs", summary.get("epoch", "-")),
             ("images/s (training steps)", summary.get("images_per_second", "-")),
             ("wall time of the last leg (min)", round(summary["wall_seconds"] / 60, 1)
              if "wall_seconds" in summary else "-")]
    hardware = summary.get("hardware") or {"device": summary.get("device", "-")}
    body = [f"<h1>{html.escape(run.run_dir.name)}</h1>",
            f"<p class=sub>{html.escape(cfg.model.name)} ({html.escape(cfg.model.arch)}"
            f"{', conditional' if cfg.model.conditional else ''}) on {html.escape(cfg.data.name)}, "
            f"step {run.step}</p>"]
    test_rows = [(METRIC_NAMES.get(k, k), v) for k, v in numbers["test"].items() if k not in ("kind", "time")]
    train_rows = [(METRIC_NAMES.get(k, k), v) for k, v in numbers["train_tail"].items()]
    eval_rows = [(f"{name} {key}", value) for name, metric in numbers["evaluation"].items()
                 for key, value in metric.items() if isinstance(value, (int, float))]
    body += [f"<h2>Test set</h2>{_table(test_rows)}" if test_rows else "",
             f"<h2>Training (mean of the last 100 steps)</h2>{_table(train_rows)}",
             f"<h2>Evaluation (eval.json; protocols there)</h2>{_table(eval_rows)}" if eval_rows else "",
             "<h2>Figures</h2>" + "".join(figure_html(page, path, caption) for path, caption in figures),
             f"<h2>Speed and hardware</h2>{_table(speed + list(hardware.items()))}",
             f"<h2>Config</h2><pre>{html.escape(yaml.safe_dump(cfg.to_dict(), sort_keys=False))}</pre>"]
    run.rundir.write_text(page, html_page(f"vaegan report: {run.run_dir.name}", "".join(body)))
    return page


def write_comparison(runs: list[LoadedRun], page: Path, seed: int = 0) -> Path:
    """One page: a metrics table of the runs, then each run's sample grid and reconstructions side by side
    (same seed, same test images)."""
    page = Path(page)
    folder, figures = OutputFolder(page.parent), page.parent / f"{page.stem}-figures"
    folder.check(page, *figures.rglob("*.png"))  # before any work: files vaegan did not write stay as they are
    rows, cards, written = [], [], []
    for run in runs:
        numbers = metrics_summary(run.run_dir)
        test, tail = numbers["test"], numbers["train_tail"]
        evaluated = numbers["evaluation"]
        rows.append([run.run_dir.name, f"{run.cfg.model.name}/{run.cfg.model.arch}", numbers["steps"],
                     test.get("mse_per_pixel", "-"), test.get("kl", "-"), tail.get("d_loss", "-"),
                     tail.get("gan", "-"), numbers["summary"].get("images_per_second", "-")]
                    + [evaluated.get(name, {}).get("value", "-") for name in EVALUATED])
        run_figures_folder = figures / run.run_dir.name
        written.append(save_sample_grid(run.model, run_figures_folder / "samples.png", run.class_names, seed=seed))
        images = [figure_html(page, written[-1], f"samples (seed {seed})")]
        if run.model.encoder is not None:
            image, recon = reconstruction_figure(run.model, run.dataset("test"), 16, run.device)
            written.append(save_image(image, run_figures_folder / "reconstructions.png"))
            images.append(figure_html(page, written[-1],
                                      f"reconstructions; test MSE per pixel {recon['split_mse_per_pixel']:.4f}"))
        cards.append(f"<div><h2>{html.escape(run.run_dir.name)}</h2>{''.join(images)}</div>")
    header = ["run", "model", "steps", "test MSE/pixel", "test KL", "D loss", "G adv. loss", "images/s",
              *(name.upper() for name in EVALUATED)]
    table = ("<div class=scroll><table><tr>" + "".join(f"<th>{h}</th>" for h in header) + "</tr>"
             + "".join("<tr>" + "".join(f"<td class=num>{_fmt(v)}</td>" for v in row) + "</tr>" for row in rows)
             + "</table></div>")
    body = (f"<h1>Comparison of {len(runs)} runs</h1><p class=sub>Test metrics are final; D and G losses are means "
            f"of the last 100 training steps; {', '.join(n.upper() for n in EVALUATED)} come from each run's "
            f"eval.json (`vaegan evaluate`) where it exists.</p>{table}<div class=runs>{''.join(cards)}</div>")
    folder.record(*written)
    return folder.write(page, html_page("vaegan comparison", body))
