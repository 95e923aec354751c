"""A run's networks as torch.export programs that load with plain PyTorch, without vaegan.

`vaegan export RUN --out FILE` writes the generator to FILE: prior noise z [N, latent_dim] (and labels y [N] for
a conditional model) -> images [N, 3, H, W] in [-1, 1], the class prior mean included, exactly as the run
samples them (its EMA generator where it keeps one). Where the model has an encoder, it goes beside it as
STEM-encoder.pt2: images in [-1, 1] (and labels) -> (mean, logvar). The discriminator is not exported. Each
file carries `vaegan.json` (what it is, how to call it):

    extra = {"vaegan.json": ""}
    program = torch.export.load("generator.pt2", extra_files=extra)
    images = program.module()(z, y)

The programs are traced on the CPU in float32 from a plain copy of the networks: load_run gives the run's model
the device's memory layout (channels_last on CPUs), which a program would bake in; the copy has none, so the
program is the eager function, and the run's own model is left as it was. The batch size is left free (N >= 1).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import torch
from torch import nn

import vaegan
from vaegan.errors import VaeganError
from vaegan.evaluation.run import LoadedRun
from vaegan.models import GenerativeModel, build_model
from vaegan.runs.files import OutputFolder, atomic_write_all

METADATA = "vaegan.json"
EXAMPLE_BATCH = 4  # the batch the programs are traced with (not 0 or 1, which torch.export would specialise on)
IMAGE_RANGE = [-1.0, 1.0]


class Generator(nn.Module):
    """G as sampling uses it (`GenerativeModel.generate`): prior noise, moved to the label's prior mean, and
    labels -> images. It holds G and the class prior only, so the program carries no other weights."""

    def __init__(self, model: GenerativeModel):
        super().__init__()
        self.model = GenerativeModel(model.decoder, latent_dim=model.latent_dim, num_classes=model.num_classes,
                                     class_prior=model.prior_mean or False)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.model.generate(z, y)


class Encoder(nn.Module):
    """E: images in [-1, 1] (and labels) -> the posterior's mean and log-variance."""

    def __init__(self, model: GenerativeModel):
        super().__init__()
        self.encoder = model.encoder
        self.conditional = model.conditional

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        return self.encoder(x, y if self.conditional else None)


def encoder_path(out: Path) -> Path:
    """Where the encoder of a generator written to `out` goes: beside it, as STEM-encoder.pt2."""
    return out.with_name(f"{out.stem}-encoder.pt2")


def plain_copy(run: LoadedRun) -> GenerativeModel:
    """The run's model (its EMA generator where kept) rebuilt without speed settings, on the CPU in float32."""
    model = build_model(run.cfg.model, run.model.num_classes)
    model.load_state_dict(run.model.state_dict())  # copies across devices and memory layouts
    return model.eval()


def _export(module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> torch.export.ExportedProgram:
    batch = torch.export.Dim("batch", min=1)
    with torch.no_grad():
        return torch.export.export(module.eval(), inputs, dynamic_shapes=tuple({0: batch} for _ in inputs))


def export_run(run: LoadedRun, out: Path) -> list[Path]:
    """Write the run's generator to `out` and its encoder (if any) beside it; returns the files written.

    A file that cannot be written (read-only folder, full disk) is a VaeganError naming it; files already
    there are then left as they were."""
    out = Path(out)
    if out.is_dir():
        raise VaeganError(f"--out {out} is a folder: name the file to write, e.g. {out / 'generator.pt2'}")
    folder = OutputFolder(out.parent)
    folder.check(out, encoder_path(out))  # a file there that vaegan did not write is never replaced
    model = plain_copy(run)
    n, latent = EXAMPLE_BATCH, model.latent_dim
    labels = (torch.arange(n) % model.num_classes,) if model.conditional else ()
    generator = Generator(model)
    with torch.no_grad():
        side = generator(torch.zeros(n, latent), *labels).shape[-1]
    about = {"vaegan_version": vaegan.__version__, "run": run.run_dir.name, "step": run.step,
             "uses_ema": run.uses_ema, "model": run.cfg.model.name, "arch": run.cfg.model.arch,
             "latent_dim": latent, "num_classes": model.num_classes,
             "class_names": run.class_names if model.conditional else [], "image_size": side}
    label = {"y": {"dtype": "int64", "shape": ["N"], "range": [0, model.num_classes - 1],
                   "about": "class indices, in the order of class_names"}} if model.conditional else {}
    images = {"dtype": "float32", "shape": ["N", 3, side, side], "range": IMAGE_RANGE}
    with_y = ", y" if model.conditional else ""
    call = "torch.export.load(path).module()"
    files = [(out, _export(generator, (torch.zeros(n, latent), *labels)), {
        **about, "network": "generator", "call": f"{call}(z{with_y}) -> images",
        "inputs": {"z": {"dtype": "float32", "shape": ["N", latent], "about": "prior noise, N(0, I)"}, **label},
        "outputs": {"images": {**images, "about": "uint8 pixels = round((images + 1) * 127.5)"}}})]
    if model.encoder is not None:
        files.append((encoder_path(out), _export(Encoder(model), (torch.zeros(n, 3, side, side), *labels)), {
            **about, "network": "encoder", "call": f"{call}(x{with_y}) -> (mean, logvar)",
            "inputs": {"x": {**images, "about": "images; from uint8 pixels: pixels / 127.5 - 1"}, **label},
            "outputs": {name: {"dtype": "float32", "shape": ["N", latent], "about": what} for name, what in
                        (("mean", "the posterior's mean"), ("logvar", "the posterior's log-variance"))}}))
    written = atomic_write_all([(path, _writer(program, metadata)) for path, program, metadata in files])
    folder.record(*written)
    return written


def _writer(program: torch.export.ExportedProgram, metadata: dict[str, Any]) -> Callable[[IO[bytes]], None]:
    text = json.dumps(metadata, indent=1)
    return lambda f: torch.export.save(program, f, extra_files={METADATA: text})
