"""The training loop and the step it runs; they know nothing of figures or evaluation (see experiment.py)."""

from vaegan.training.factory import TrainingParts, build_adam, build_training
from vaegan.training.step import StepOutput, TrainStep
from vaegan.training.trainer import Position, Trainer, TrainingEvents, TrainingLeg

__all__ = ["Position", "StepOutput", "TrainStep", "Trainer", "TrainingEvents", "TrainingLeg", "TrainingParts",
           "build_adam", "build_training"]
