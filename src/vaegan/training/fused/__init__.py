"""Fused training: K runs whose configs build the same tensor shapes trained as one model in one process.

Every parameter, buffer and optimiser state gains a leading member dimension; convolutions become grouped
convolutions, linear layers batched matrix products, BatchNorm runs over K*C channels (HFTA, Wang et al., MLSys
2021). Each member keeps what makes it its own run: its data order, its random stream, its hyperparameters, its
non-finite skips and its divergence stop. Its checkpoints are a normal run's, so a member's folder resumes,
evaluates and reports alone.
"""

from vaegan.training.fused.model import MemberRandom, fuse_models, member_state, stack_states
from vaegan.training.fused.trainer import FusedTrainer, Member

__all__ = ["FusedTrainer", "Member", "MemberRandom", "fuse_models", "member_state", "stack_states"]
