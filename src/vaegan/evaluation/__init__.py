"""Numbers that judge a trained model."""

from vaegan.evaluation.reconstruction import evaluate_reconstruction

__all__ = ["evaluate_reconstruction"]
