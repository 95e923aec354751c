"""A run as a Python user handles it: its files, its model as functions on images, its metrics and figures.

    run = vaegan.open_run("runs/demo")
    images = run.sample(count=4, classes=["apple", "bed"])    # uint8 [8, 3, 32, 32]
    run.sample_grid().image                                    # a PIL image

The model is opened on first use (from the run's last checkpoint, with the EMA generator where the run keeps
one), so a freshly trained run costs nothing until it is used.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import torch
from PIL import Image

from vaegan.api.images import Images, Labels, check_output, class_index, label_tensor, model_input, model_output
from vaegan.config import Config
from vaegan.errors import VaeganError
from vaegan.evaluation import METRICS
from vaegan.evaluation.interpolation import path as latent_path
from vaegan.evaluation.latent import KNN_K
from vaegan.evaluation.run import LoadedRun, load_run
from vaegan.models import GenerativeModel, evaluation_mode
from vaegan.runs import RunDir
from vaegan.viz.curves import curves_figure, quality_figure
from vaegan.viz.figures import interpolation_figure, interpolation_paths, reconstruction_figure
from vaegan.viz.grid import figure_image, save_image
from vaegan.viz.latent_map import latent_map_figure
from vaegan.viz.report import write_report
from vaegan.viz.samples import class_conditional_samples, fixed_latents, sample_grid_image

if TYPE_CHECKING:
    import pandas


@dataclass(frozen=True)
class Picture:
    """A figure of a run: the PIL image, the numbers it shows, and the file it was written to (if any). A
    notebook displays it as its image."""

    image: Image.Image
    numbers: dict[str, float] = field(default_factory=dict)
    path: Path | None = None

    def save(self, path: str | Path) -> Path:
        """Write the image as a PNG file (atomically)."""
        return save_image(self.image, Path(path))

    def _repr_png_(self) -> bytes:
        return self.image._repr_png_()


class Encoding(NamedTuple):
    mean: torch.Tensor  # [N, latent_dim], the posterior means (what `decode` takes)
    logvar: torch.Tensor  # [N, latent_dim]


def _positive(**counts: int) -> None:
    """Counts a call asks for (samples, images, steps) must be whole numbers >= 1."""
    for name, value in counts.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise VaeganError(f"{name}={value!r}: give a whole number >= 1")


def _picture(image: Image.Image, out: str | Path | None, numbers: dict[str, float] | None = None) -> Picture:
    return Picture(image, numbers or {}, save_image(image, Path(out)) if out is not None else None)


class Run:
    """A run folder: trained by `vaegan.train`, or opened with `vaegan.open_run`."""

    def __init__(self, path: str | Path, device: str = "auto"):
        """`device`: where the model runs (auto, cpu, cuda, cuda:N, mps); the run's files are read lazily."""
        self.rundir = RunDir(Path(path))
        self.requested_device = device
        self._opened: LoadedRun | None = None

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r})"

    # ---- what the folder holds -----------------------------------------------------------------------------

    @property
    def path(self) -> Path:
        return self.rundir.path

    @property
    def opened(self) -> LoadedRun:
        """The run's config, model and data as read from its last checkpoint (opened once)."""
        if self._opened is None:
            self._opened = load_run(self.path, self.requested_device)
        return self._opened

    @property
    def config(self) -> Config:
        return self.opened.cfg

    @property
    def step(self) -> int:
        return self.opened.step

    @property
    def device(self) -> torch.device:
        return self.opened.device

    @property
    def model(self) -> GenerativeModel:
        """The model in eval mode, with the EMA generator where the run keeps one."""
        return self.opened.model

    @property
    def class_names(self) -> list[str]:
        return self.opened.class_names

    @property
    def summary(self) -> dict[str, Any] | None:
        """summary.json: final test metrics, speed and hardware; None until the run has finished."""
        return self.rundir.read_json(self.rundir.summary)

    @property
    def uses_ema(self) -> bool:
        """Whether `model`'s generator is the EMA copy (runs trained with train.ema_decay > 0)."""
        return self.opened.uses_ema

    def metrics(self, kind: str | None = None, as_frame: bool = True) -> pandas.DataFrame | list[dict[str, Any]]:
        """The metrics.jsonl records (kind train, test or quality; all when None): a pandas DataFrame when pandas
        is installed (and `as_frame`), a list of dicts otherwise."""
        records = [r for r in self.rundir.records() if kind is None or r.get("kind") == kind]
        if not as_frame or importlib.util.find_spec("pandas") is None:
            return records
        import pandas

        return pandas.DataFrame.from_records(records)

    def images(self, split: str = "test", n: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
        """The first n images of the run's data split (train or test) as uint8 [n,3,32,32], and their labels."""
        dataset = self.opened.dataset(split)
        return dataset.images[:n].clone(), dataset.labels[:n].clone()

    # ---- the model on images -------------------------------------------------------------------------------

    def _generator(self, ema: bool) -> GenerativeModel:
        return self.opened.with_generator(ema)

    def _class_indices(self, classes: Labels) -> list[int]:
        """One class or several, by index or by name, as checked indices."""
        wanted = [classes] if isinstance(classes, (int, str)) else list(classes)
        return [class_index(c, self.class_names, self.model.num_classes) for c in wanted]

    def _labels(self, labels: Labels, count: int) -> torch.Tensor | None:
        return label_tensor(labels, count, self.class_names, self.model.num_classes, self.device)

    def _encoder_model(self, to: str) -> GenerativeModel:
        if self.model.encoder is None:
            raise VaeganError(f"{self.path} holds a {self.config.model.name} model without an encoder: it cannot "
                              f"{to}")
        return self.model

    def sample(self, count: int = 8, classes: Labels = None, seed: int = 0, ema: bool = True,
               output: str = "uint8") -> torch.Tensor | list[Image.Image]:
        """`count` samples (for each of `classes`, class-major, in a conditional model) from the fixed latents of
        `seed`: the same images as `sample_grid` shows. `ema=False` uses the trained generator instead of its
        EMA copy. `output`: uint8 (default), pil or float ([-1, 1])."""
        check_output(output)
        _positive(count=count)
        model = self._generator(ema)
        if model.conditional:
            if classes is None:
                raise VaeganError("this model is conditional: give classes (indices or names), e.g. classes=[0, 1]")
            indices = self._class_indices(classes)
            return model_output(class_conditional_samples(model, indices, count, seed), output)
        self._labels(classes, count)  # refuses classes for an unconditional model
        with evaluation_mode(model):
            return model_output(model.generate(fixed_latents(model, count, seed)), output)

    def encode(self, images: Images, labels: Labels = None) -> Encoding:
        """The posterior means and log-variances of images (uint8 tensors or PIL images)."""
        model = self._encoder_model("encode")
        x = model_input(images, self.device)
        with torch.no_grad(), evaluation_mode(model):
            mean, logvar = model.encoder(x, self._labels(labels, len(x)))
        return Encoding(mean, logvar)

    def decode(self, z: torch.Tensor, labels: Labels = None, ema: bool = True, output: str = "uint8"
               ) -> torch.Tensor | list[Image.Image]:
        """Images of latent codes z [N, latent_dim] as `encode` gives them (posterior means)."""
        check_output(output)
        model = self._generator(ema)
        z = torch.as_tensor(z, dtype=torch.float32, device=self.device)
        if z.dim() != 2 or z.shape[1] != model.latent_dim:
            raise VaeganError(f"z: expected shape [N, {model.latent_dim}], got {list(z.shape)}")
        with torch.no_grad(), evaluation_mode(model):
            return model_output(model.decode(z, self._labels(labels, len(z))), output)

    def reconstruct(self, images: Images, labels: Labels = None, output: str = "uint8"
                    ) -> torch.Tensor | list[Image.Image]:
        """Images decoded from their posterior means (the trained generator's view, as in the test metrics)."""
        return self.decode(self.encode(images, labels).mean, labels, output=output)

    def interpolate(self, first: Images, second: Images, labels: Labels = None, steps: int = 10,
                    mode: str = "linear", ema: bool = True, output: str = "uint8") -> torch.Tensor | list[Image.Image]:
        """`steps` images along the path (linear or slerp) between two images' posterior means, decoded at the
        first image's label (give one label for both, or one each)."""
        _positive(steps=steps)
        if steps < 2:
            raise VaeganError(f"steps={steps}: a path needs at least 2 images")
        pair = torch.cat([model_input(first, self.device), model_input(second, self.device)])
        if len(pair) != 2:
            raise VaeganError("interpolate takes one image as `first` and one as `second`")
        labels = self._labels(labels, 2)
        mean = self.encode(pair, labels).mean
        try:
            codes = latent_path(mean[0], mean[1], steps, mode)
        except ValueError as err:
            raise VaeganError(str(err)) from None
        return self.decode(codes, None if labels is None else labels[:1], ema, output)

    # ---- numbers and figures -------------------------------------------------------------------------------

    def evaluate(self, metrics: list[str] | tuple[str, ...] = METRICS, n: int = 10_000, seed: int = 0,
                 classifier: str | Path | None = None, inception_weights: str | Path | None = None,
                 inception_precision: str = "fp32") -> dict[str, Any]:
        """Any subset of the metrics (`vaegan.evaluation.METRICS`) with their protocols: the record that is also
        written to RUN/eval.json (`metrics`: name -> numbers, `skipped`: name -> why)."""
        from vaegan.evaluation.suite import evaluate

        weights = inception_weights or self.config.evaluation.inception_weights
        return evaluate(self.opened, list(metrics), n, seed, str(weights) if weights else None,
                        Path(classifier) if classifier else None, inception_precision=inception_precision)

    def sample_grid(self, classes: Labels = None, per_class: int = 8, seed: int = 0, ema: bool = True,
                    out: str | Path | None = None) -> Picture:
        """Rows = classes (default 0-7) of a conditional model, columns = one fixed z each; an 8x8 grid
        otherwise. `out`: also write it there."""
        _positive(per_class=per_class)
        model = self._generator(ema)
        if classes is not None and not model.conditional:
            raise VaeganError(f"{self.path} holds an unconditional model: it has no classes to ask for")
        indices = None if classes is None else self._class_indices(classes)
        return _picture(sample_grid_image(model, self.class_names, indices, per_class, seed), out)

    def reconstruction_grid(self, n: int = 16, split: str = "test", out: str | Path | None = None) -> Picture:
        """The first n images of a split over their reconstructions; numbers: their MSE and the split's."""
        _positive(n=n)
        model = self._encoder_model("reconstruct")
        image, numbers = reconstruction_figure(model, self.opened.dataset(split), n, self.device)
        return _picture(image, out, numbers)

    def interpolation_grids(self, pairs: int = 4, steps: int = 10, mode: str = "linear", seed: int = 0,
                            out: str | Path | None = None) -> dict[str, Picture]:
        """Paths between pairs of random test images: "latent" (between their means) and, for a conditional
        model, "label" (between two labels at fixed z). `out`: the latent one's file, the label one beside it."""
        _positive(pairs=pairs, steps=steps)
        model = self._encoder_model("encode the test images to interpolate between")
        images = interpolation_figure(model, self.opened.dataset("test"), pairs, steps, mode, seed, self.device)
        paths = interpolation_paths(Path(out), list(images)) if out is not None else {}
        return {kind: _picture(image, paths.get(kind)) for kind, image in images.items()}

    def latent_map(self, n: int = 5000, method: str = "pca", seed: int = 0, out: str | Path | None = None
                   ) -> Picture:
        """A 2-D map (pca or tsne) of the first n test images' posterior means; numbers: their 5-NN accuracy."""
        if isinstance(n, bool) or not isinstance(n, int) or n <= KNN_K:
            raise VaeganError(f"n={n!r}: the map's {KNN_K}-NN accuracy needs at least {KNN_K + 1} images")
        model = self._encoder_model("encode test images into a latent map")
        figure, numbers = latent_map_figure(model, self.opened.dataset("test"), n, method, self.device, seed)
        return _picture(figure_image(figure), out, numbers)

    def curves(self, out: str | Path | None = None) -> Picture:
        """The loss curves of metrics.jsonl (smoothed, raw faint behind, test points per epoch)."""
        records = self.rundir.records()
        if not any(r.get("kind") == "train" for r in records):
            raise VaeganError(f"{self.rundir.metrics_file} holds no training steps yet: nothing to plot")
        return _picture(figure_image(curves_figure(records, title=self.path.name)), out)

    def report(self, latent_images: int = 2000) -> Path:
        """RUN/report.html: every figure, the metrics, the config and the hardware."""
        return write_report(self.opened, latent_images=latent_images)

    def export(self, out: str | Path) -> list[Path]:
        """The generator (and encoder) as torch.export files that load without vaegan: `vaegan export`."""
        from vaegan.export import export_run  # torch.export's machinery loads only when a run is exported

        return export_run(self.opened, Path(out))


def quality_curves(runs: list[Run], out: str | Path | None = None) -> Picture:
    """FCD and class consistency of runs trained with evaluation.quality_classifier, against images seen and
    training seconds: recipes of different step costs on one picture."""
    missing = [str(run.path) for run in runs if not run.metrics("quality", as_frame=False)]
    if missing:
        raise VaeganError(f"no quality records in {', '.join(missing)} (no metrics.jsonl there, or trained without "
                          "evaluation.quality_classifier=FILE): nothing to compare")
    figure = quality_figure({str(run.path) if len(runs) > 1 else run.path.name: run.rundir.records() for run in runs})
    return _picture(figure_image(figure), out)


def open_run(path: str | Path, device: str = "auto") -> Run:
    """A trained (or training, or stopped) run folder; every problem with it is one VaeganError."""
    run = Run(path, device)
    run.opened  # open now, so a wrong path fails here rather than at first use
    return run
