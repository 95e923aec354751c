"""Numbers that judge a trained model."""

from vaegan.evaluation.reconstruction import evaluate_reconstruction, evaluation_mode

__all__ = ["evaluate_reconstruction", "evaluation_mode"]
