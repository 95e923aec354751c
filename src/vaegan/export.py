"""A run's networks as torch.export programs that load with plain PyTorch, without vaegan.

`vaegan export RUN --out FILE` writes the generator to FILE: prior noise z [N, latent_dim] (and labels y [N] for
a conditional model) -> images [N, 3, 32, 32] in [-1, 1], the class prior mean included, exactly as the run
samples them. Where the model has an encoder, it goes beside it as STEM-encoder.pt2: images in [-1, 1] (and
labels) -> (mean, logvar). Each file carries `vaegan.json` (what it is, how to call it):

    program = torch.export.load("generator.pt2", extra_files={"vaegan.json": ""})
    images = program.module()(z, y)

The programs are traced on the CPU in float32 from a plain copy of the networks (without the speed settings
a run is opened with), with the batch size left free.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

import vaegan
from vaegan.data.resize import SIDE
from vaegan.errors import VaeganError
from vaegan.evaluation.run import LoadedRun
from vaegan.models import GenerativeModel, build_model
from vaegan.runs.files import atomic_write_all

METADATA = "vaegan.json"
EXAMPLE_BATCH = 4  # the batch the programs are traced with; any batch size works when they run


class Generator(nn.Module):
    """G as sampling uses it: prior noise (moved to the label's prior mean) and labels -> images."""

    def __init__(self, model: GenerativeModel):
        super().__init__()
        self.model = model

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.model.generate(z, y)


class Encoder(nn.Module):
    """E: images in [-1, 1] (and labels) -> the posterior's mean and log-variance."""

    def __init__(self, model: GenerativeModel):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        return self.model.encoder(x, self.model.labels(y))


def encoder_path(out: Path) -> Path:
    return out.with_name(f"{out.stem}-encoder.pt2")


def plain_copy(run: LoadedRun) -> GenerativeModel:
    """The run's model (its EMA generator where kept) rebuilt without speed settings, on the CPU in float32."""
    model = build_model(run.cfg.model, run.model.num_classes)
    model.load_state_dict({k: v.detach().float().cpu() for k, v in run.model.state_dict().items()})
    return model.eval()


def _export(module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> torch.export.ExportedProgram:
    batch = torch.export.Dim("batch", min=1)
    shapes = tuple({0: batch} for _ in inputs)
    with torch.no_grad():
        return torch.export.export(module, inputs, dynamic_shapes=shapes)


def _metadata(run: LoadedRun, network: str, call: str, inputs: dict[str, str], outputs: dict[str, str]
              ) -> str:
    model = run.model
    return json.dumps({"vaegan_version": vaegan.__version__, "network": network, "run": run.run_dir.name,
                       "step": run.step, "generator": "EMA" if run.uses_ema else "trained",
                       "model": run.cfg.model.name, "arch": run.cfg.model.arch, "latent_dim": model.latent_dim,
                       "num_classes": model.num_classes, "class_names": run.class_names if model.conditional else [],
                       "image_size": SIDE, "call": call, "inputs": inputs, "outputs": outputs}, indent=1)


def export_run(run: LoadedRun, out: Path) -> list[Path]:
    """Write the run's generator to `out` and its encoder (if any) beside it; returns the files written."""
    out = Path(out)
    if out.is_dir():
        raise VaeganError(f"--out {out} is a folder: name the file to write, e.g. {out / 'generator.pt2'}")
    model = plain_copy(run)
    conditional = model.conditional
    labels = (torch.arange(EXAMPLE_BATCH) % model.num_classes,) if conditional else ()
    label_input = {"y": "int64 [N], class indices 0..num_classes-1"} if conditional else {}
    call = "torch.export.load(path).module()"
    programs: list[tuple[Path, torch.export.ExportedProgram, str]] = []
    z = torch.zeros(EXAMPLE_BATCH, model.latent_dim)
    programs.append((out, _export(Generator(model), (z, *labels)), _metadata(
        run, "generator", f"{call}(z{', y' if conditional else ''}) -> images",
        {"z": f"float32 [N, {model.latent_dim}], prior noise N(0, I)", **label_input},
        {"images": f"float32 [N, 3, {SIDE}, {SIDE}] in [-1, 1]; uint8 pixels = round((images + 1) * 127.5)"})))
    if model.encoder is not None:
        x = torch.zeros(EXAMPLE_BATCH, 3, SIDE, SIDE)
        programs.append((encoder_path(out), _export(Encoder(model), (x, *labels)), _metadata(
            run, "encoder", f"{call}(x{', y' if conditional else ''}) -> (mean, logvar)",
            {"x": f"float32 [N, 3, {SIDE}, {SIDE}] in [-1, 1]; from uint8 pixels: pixels / 127.5 - 1", **label_input},
            {"mean": f"float32 [N, {model.latent_dim}]", "logvar": f"float32 [N, {model.latent_dim}]"})))
    return atomic_write_all([(path, _writer(program, metadata)) for path, program, metadata in programs])


def _writer(program: torch.export.ExportedProgram, metadata: str) -> Any:
    return lambda f: torch.export.save(program, f, extra_files={METADATA: metadata})
