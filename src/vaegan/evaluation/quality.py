"""Sample quality while a run trains: FCD and class consistency at each epoch end.

With `evaluation.quality_classifier` set, every epoch end scores `evaluation.quality_samples` class-balanced
samples with that classifier (a `vaegan classifier train` file) against as many test images, and the run logs a
`quality` record with the images seen and the training seconds so far. `vaegan curves` and the report draw
these against both, so recipes of different step costs compare on one picture. Score with a classifier the
run does not train against (not its perceptual network): that network's features reward the match, not the
images.
"""

from __future__ import annotations

from pathlib import Path

import torch

from vaegan.data import ImageDataset
from vaegan.evaluation import features as feat
from vaegan.evaluation.classifier import check_matches
from vaegan.evaluation.statistics import frechet_distance
from vaegan.evaluation.suite import class_consistency, moments
from vaegan.models import GenerativeModel
from vaegan.objectives.feature_networks import load_classifier

SEED = 0  # the samples' z and labels: the same at every epoch end, so only the model changes


class QualityProbe:
    def __init__(self, classifier_path: Path, test_set: ImageDataset, samples: int, device: torch.device):
        """Loads and checks the classifier and scores the first `samples` test images once. Building the network
        draws its initial weights: that happens on a fork of the CPU generator, so a run trains the same with or
        without the probe."""
        with torch.random.fork_rng(devices=[]):
            self.network, info = load_classifier(classifier_path, device)
        check_matches(info, test_set.name, classifier_path)
        self.samples, self.features = samples, feat.classifier_extractor(self.network)
        real = feat.extract(feat.real_batches(test_set.head(samples), device), self.features)
        self.real_moments = moments(real["features"])

    def measure(self, model: GenerativeModel) -> dict[str, float]:
        """{"fcd": ..., and "cc" for a conditional model} of `model`'s samples (it runs in evaluation mode)."""
        fake = feat.extract(feat.generated_batches(model, self.samples, SEED), self.features)
        result = {"fcd": frechet_distance(*self.real_moments, *moments(fake["features"]))}
        if model.conditional:
            result["cc"] = class_consistency(fake["predicted"], fake["labels"])
        return result
