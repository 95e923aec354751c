"""The one place that prepares what a training step needs: model -> speed settings -> optimisers -> EMA ->
step. The trainer and benchmarks/throughput.py both build through it, so they time and train the same thing."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from vaegan.config import Config
from vaegan.errors import VaeganError
from vaegan.models import GenerativeModel, build_model
from vaegan.objectives.perceptual import PerceptualLoss, build_perceptual_loss
from vaegan.runs.cache import cache_dir
from vaegan.speed import SpeedSettings, align_optimizer_state, apply_speed_settings
from vaegan.seeding import derive_seed
from vaegan.training.distributed import Ranks
from vaegan.training.ema import GeneratorEMA
from vaegan.training.graph import GraphedStep
from vaegan.training.step import TrainStep


def build_adam(params, lr: float, weight_decay: float, betas: tuple[float, float], *, fused: bool = False,
               capturable: bool = False) -> torch.optim.Adam:
    """Adam with L2 weight decay (as in the reference: `Adam(weight_decay=1e-4)`, not AdamW).

    `fused` picks the one-kernel implementation (else torch's default); both compute the same update;
    `capturable` lets a CUDA graph capture it (training/graph.py), and stays as built when a state_dict saved
    without it is loaded. Loading a state_dict re-lays the state out like the parameters (see
    `align_optimizer_state`), so checkpoints move between channels_last and plain runs safely.
    """
    optimizer = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, betas=betas, fused=fused or None,
                                 capturable=capturable)
    optimizer.register_load_state_dict_post_hook(align_optimizer_state)

    def keep_capturable(loaded: torch.optim.Optimizer) -> None:
        for group in loaded.param_groups:
            group["capturable"] = capturable
    optimizer.register_load_state_dict_post_hook(keep_capturable)
    return optimizer


@dataclass
class TrainingParts:
    model: GenerativeModel  # on the device, with the speed settings applied
    optimizer: torch.optim.Adam  # E and G
    d_optimizer: torch.optim.Adam | None  # D, when the model has one
    ema: GeneratorEMA | None  # of G, when train.ema_decay > 0
    perceptual: PerceptualLoss | None  # frozen feature network, when loss.perceptual_weight > 0
    step: TrainStep | GraphedStep


def build_training(cfg: Config, num_classes: int, device: torch.device, speed: SpeedSettings,
                   ranks: Ranks = Ranks()) -> TrainingParts:
    """Everything one training step needs, initialised from `train.seed` (model weights draw from the global
    torch generator, so the same seed gives the same initial model on every call and every rank). Ranks then
    draw their own noise (sampling, dropout) from a seed of their own."""
    torch.manual_seed(cfg.train.seed)
    model = apply_speed_settings(build_model(cfg.model, num_classes), speed).to(device)
    if ranks.distributed:
        torch.manual_seed(derive_seed(cfg.train.seed, "rank", ranks.rank))
    betas = (cfg.optim.beta1, cfg.optim.beta2)
    optimizer = build_adam(model.autoencoder_parameters(), cfg.optim.lr, cfg.optim.weight_decay, betas,
                           fused=speed.fused_adam, capturable=speed.cuda_graph)
    d_optimizer = None if model.discriminator is None else build_adam(
        model.discriminator.parameters(), cfg.optim.d_lr, 0.0, betas, fused=speed.fused_adam,
        capturable=speed.cuda_graph)
    ema = GeneratorEMA(model.decoder, cfg.train.ema_decay) if cfg.train.ema_decay > 0 else None
    perceptual = build_perceptual_loss(cfg.loss, cache_dir(), device)
    if perceptual is not None and speed.channels_last:
        perceptual = perceptual.to(memory_format=torch.channels_last)
    step = TrainStep(model, optimizer, cfg.loss, d_optimizer=d_optimizer, ema=ema, perceptual=perceptual,
                     speed=speed, ranks=ranks)
    if speed.cuda_graph:
        if ranks.distributed or not all(step.skips_on_device.values()):
            raise VaeganError("train.graph=on needs one process and fused Adam that skips on the device (a graph "
                              "cannot wait for the host); use train.graph=off")
        step = GraphedStep(step)
    return TrainingParts(model, optimizer, d_optimizer, ema, perceptual, step)
