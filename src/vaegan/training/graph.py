"""The whole training step captured once into a CUDA graph and replayed (`train.graph=on`).

One batch of 128 images of 32x32 leaves a large GPU waiting on the launch of thousands of small kernels
(docs/performance.md). A CUDA graph launches all of them at once: forward, both backward passes, both
optimiser updates, the non-finite guard, the buffer restore and the EMA, which TrainStep already runs without a
host sync. Batches are copied into static input tensors; the random draws are graph-safe (the CUDA generator
advances its offset per replay as the eager step would); the step's outputs are static tensors, copied out
after each replay. The first steps run eagerly, so that the state the step creates lazily (Adam's moments,
cuDNN's plans) exists before the capture; the VAE warm-up (no GAN terms) and the adversarial step are two
graphs. Adam must be built with `capturable=True` (`build_adam(capturable=...)`).
"""

from __future__ import annotations

import torch

from vaegan.training.step import StepOutput, TrainStep

EAGER_STEPS = 3  # steps run eagerly on a side stream before the capture, as torch.cuda.graphs asks


class GraphedStep:
    """A TrainStep replayed from a CUDA graph per value of `adversarial`."""

    def __init__(self, step: TrainStep):
        self.step = step
        self.graphs: dict[bool, tuple[torch.cuda.CUDAGraph, torch.Tensor, torch.Tensor | None, StepOutput]] = {}
        self.eager_steps = 0

    def __getattr__(self, name: str):
        return getattr(self.step, name)  # model, optimisers, EMA, loss_cfg, speed: the TrainStep's

    def __call__(self, x: torch.Tensor, y: torch.Tensor | None = None, *, adversarial: bool = True) -> StepOutput:
        if self.eager_steps < EAGER_STEPS:
            self.eager_steps += 1
            main = torch.cuda.current_stream(x.device)
            side = torch.cuda.Stream(x.device)
            side.wait_stream(main)
            with torch.cuda.stream(side):
                out = self.step(x, y, adversarial=adversarial)
            main.wait_stream(side)
            return out
        if adversarial not in self.graphs:
            self.graphs[adversarial] = self._capture(x, y, adversarial)
        graph, static_x, static_y, out = self.graphs[adversarial]
        static_x.copy_(x)
        if static_y is not None:
            static_y.copy_(y)
        graph.replay()
        return StepOutput({key: value.clone() for key, value in out.values.items()}, skipped=out.skipped.clone())

    def _capture(self, x: torch.Tensor, y: torch.Tensor | None, adversarial: bool):
        static_x, static_y = x.clone(), None if y is None else y.clone()
        graph = torch.cuda.CUDAGraph()
        pool = next(iter(self.graphs.values()))[0].pool() if self.graphs else None
        with torch.cuda.graph(graph, pool=pool):
            out = self.step(static_x, static_y, adversarial=adversarial)
        return graph, static_x, static_y, out
