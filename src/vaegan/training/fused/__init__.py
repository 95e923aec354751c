"""Fused training: K runs whose configs build the same tensor shapes, trained in one process as one group.

Each member is a normal run (its own Trainer: model, optimisers, EMA, data order, folder) and keeps what makes
it its own: its random stream, its hyperparameters, its non-finite skips and its divergence stop. On a GPU the
members' layers run as one grouped layer each (HFTA, Wang et al., MLSys 2021: convolutions become grouped
convolutions, BatchNorm runs over K*C channels), so one step computes all of them; on a CPU, which one run
keeps busy, each member's step runs as it would alone. A member's folder resumes, evaluates and reports alone.
"""

from vaegan.training.fused.model import MemberRandom, fuse_models
from vaegan.training.fused.trainer import FusedTrainer, fuse_key

__all__ = ["FusedTrainer", "MemberRandom", "fuse_key", "fuse_models"]
