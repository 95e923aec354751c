"""`vaegan evaluate`: every metric of a run in one pass, each written to RUN/eval.json with its protocol.

Metrics: recon (test-set MSE, PSNR, ELBO terms), latent (linear probe and kNN accuracy of posterior means),
sharp (Laplacian energy of samples and reconstructions against real images), smooth (how evenly images change
along latent interpolations), fid / kid / is (the standard Inception network; skipped with one line when its
weights are absent), and, with a classifier from `vaegan classifier train`, fcd (+ intra-class FCD and the
real-vs-real floor), cc (class consistency of conditional samples), pr (precision/recall, k=3) and div
(spread of samples against real images of the same class: mode collapse). Real-image features are cached
per (dataset, split, extractor, weights hash, count, content fingerprint), so a second evaluation reuses them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vaegan.errors import VaeganError
from vaegan.evaluation import METRICS
from vaegan.evaluation import classifier as clf
from vaegan.evaluation import features as feat
from vaegan.evaluation.inception import INCEPTION_WEIGHTS, load_fid_inception
from vaegan.evaluation.latent import encode_means, knn_accuracy
from vaegan.evaluation.interpolation import interpolation_rows, step_ratios
from vaegan.evaluation.manifold import mean_pairwise_distance, precision_recall
from vaegan.evaluation.reconstruction import evaluate_reconstruction
from vaegan.evaluation.run import LoadedRun
from vaegan.evaluation.sharpness import laplacian_energy
from vaegan.evaluation.statistics import (RunningMoments, frechet_distance, inception_score,
                                          kernel_inception_distance)
from vaegan.models import evaluation_mode
from vaegan.objectives.feature_networks import load_classifier
from vaegan.runs.cache import cache_dir
from vaegan.runs.files import sha256_of
from vaegan.speed import autocast

INCEPTION_METRICS = {"fid", "kid", "is"}
CLASSIFIER_METRICS = {"fcd", "cc", "pr", "div"}
INTERPOLATION_PAIRS, INTERPOLATION_STEPS = 50, 10


def moments(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance accumulated in float64 over chunks of rows (never one big float64 copy)."""
    running = RunningMoments(rows.shape[1])
    for start in range(0, len(rows), 1000):
        running.update(rows[start:start + 1000])
    return running.mean(), running.covariance()


def class_consistency(predicted: np.ndarray, requested: np.ndarray) -> float:
    """Share of images the classifier assigns to the class they were made (or labelled) as."""
    return float((np.asarray(predicted) == np.asarray(requested)).mean())


def frechet(a: np.ndarray, b: np.ndarray) -> float:
    return frechet_distance(*moments(a), *moments(b))


@contextmanager
def inception_precision(precision: str, device: torch.device) -> Iterator[None]:
    """Run the FID Inception in fp32 (the standard), with TF32 matmuls and convolutions (CUDA), or under bf16
    autocast; the process's own TF32 flags are restored afterwards."""
    flags = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    tf32 = precision == "tf32"
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32, tf32
    try:
        with autocast(precision, device):
            yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = flags


class Evaluation:
    def __init__(self, run: LoadedRun, n: int, seed: int, inception_weights: str | None,
                 classifier_path: Path | None, cache: Path, inception_precision: str = "fp32"):
        self.run, self.n, self.seed, self.cache = run, n, seed, cache
        self.precision = inception_precision
        self.inception_weights, self.classifier_path = inception_weights, classifier_path
        self.results: dict[str, Any] = {}
        self.skipped: dict[str, str] = {}
        self.generator = "ema" if run.uses_ema else "raw"

    def protocol(self, **extra: Any) -> dict[str, Any]:
        return {"seed": self.seed, "generator": self.generator, "step": self.run.step, **extra}

    # ---- per group -----------------------------------------------------------------------------------

    def recon(self, _: list[str]) -> None:
        test = self.run.dataset("test")
        loss = self.run.cfg.loss
        values = evaluate_reconstruction(self.run.model, feat.real_batches(test, self.run.device), loss.beta,
                                         loss.reduction)
        self.results["recon"] = {**values, "protocol": self.protocol(
            reference="test split", n_real=len(test), z="posterior mean",
            reduction=loss.reduction, beta=loss.beta)}

    def latent(self, _: list[str]) -> None:
        from sklearn.linear_model import LogisticRegression

        model, device = self.run.model, self.run.device
        train, test = self.run.dataset("train").head(self.n), self.run.dataset("test").head(self.n)
        if len(train.labels.unique()) < 2:
            raise VaeganError("the latent probes measure how classes separate: they need two or more classes")
        train_means, test_means = encode_means(model, train, device), encode_means(model, test, device)
        probe = LogisticRegression(max_iter=1000).fit(train_means.numpy(), train.labels.numpy())
        self.results["latent"] = {
            "linear_probe_accuracy": float(probe.score(test_means.numpy(), test.labels.numpy())),
            "knn_accuracy": knn_accuracy(test_means, test.labels),
            "protocol": self.protocol(train_images=len(train), test_images=len(test), k=5,
                                      probe="logistic regression on train means, scored on test means",
                                      encoder_labels="true labels" if model.conditional else "none")}

    def sharpness(self, _: list[str]) -> None:
        def energy(batches) -> float:
            with torch.inference_mode():
                return float(torch.cat([laplacian_energy(x).double() for x, _ in batches]).mean())
        model, test = self.run.model, self.run.dataset("test").head(self.n)
        real = energy(feat.real_batches(test, self.run.device))
        values = {"samples": energy(feat.generated_batches(model, self.n, self.seed)), "real": real}
        values["ratio"] = values["samples"] / real
        if model.encoder is not None:
            with evaluation_mode(model):
                values["reconstructions"] = energy((model(x, y)[0], y)
                                                   for x, y in feat.real_batches(test, self.run.device))
            values["reconstruction_ratio"] = values["reconstructions"] / real
        self.results["sharp"] = {**values, "protocol": self.protocol(
            n_real=len(test), n_fake=self.n, reference="test split", z="posterior mean for reconstructions",
            measure="mean squared 4-neighbour Laplacian of the luma in [0, 1], interior pixels; ratio = "
                    "images / real (1: as much fine detail as real images)")}

    def smoothness(self, _: list[str]) -> None:
        pairs = min(INTERPOLATION_PAIRS, self.n // 2, len(self.run.dataset("test")) // 2)
        if pairs < 1:
            raise VaeganError("smooth interpolates between pairs of test images: it needs --n 2 or more")
        test = self.run.dataset("test").head(2 * pairs)
        x, y = next(feat.real_batches(test, self.run.device, batch=len(test)))
        with torch.inference_mode():
            rows = interpolation_rows(self.run.model, x, y, INTERPOLATION_STEPS)["latent"]
        ratios = step_ratios(rows, INTERPOLATION_STEPS).double()
        self.results["smooth"] = {
            "mean_step_ratio": float(ratios.mean()), "max_step_ratio": float(ratios.max()),
            "protocol": self.protocol(pairs=len(ratios), steps=INTERPOLATION_STEPS, mode="linear",
                                      endpoints="posterior means of neighbouring test images",
                                      measure="largest / mean pixel L2 distance between neighbouring decoded "
                                              "images of a path (1: even change; k: one jump among k steps)")}

    def fakes(self, extractor: feat.Extractor) -> dict[str, np.ndarray]:
        return feat.extract(feat.generated_batches(self.run.model, self.n, self.seed), extractor)

    def reals(self, split: str, extractor_key: str, extractor: feat.Extractor) -> dict[str, np.ndarray]:
        dataset = self.run.dataset(split).head(self.n)
        return feat.cached_features(self.cache, feat.real_features_key(dataset, extractor_key),
                                    lambda: feat.extract(feat.real_batches(dataset, self.run.device), extractor))

    def inception(self, wanted: list[str]) -> None:
        path = INCEPTION_WEIGHTS.path(self.inception_weights, self.cache)
        digest = sha256_of(path)
        network = load_fid_inception(path, self.run.device)

        def extractor(images: torch.Tensor) -> dict[str, torch.Tensor]:
            with inception_precision(self.precision, images.device):
                pool, logits = network(images)
            return {"pool": pool.float(), "logits": logits.float()}
        fake = self.fakes(extractor)
        suffix = "" if self.precision == "fp32" else f"-{self.precision}"
        real = self.reals("test", f"fid-inception-{digest[:16]}{suffix}", extractor)
        protocol = self.protocol(n_real=len(real["pool"]), n_fake=len(fake["pool"]), reference="test split",
                                 extractor="FID Inception-v3 (2015-12-05), 2048-d pool", weights_sha256=digest,
                                 precision=self.precision)
        if "fid" in wanted:
            self.results["fid"] = {"value": frechet(real["pool"], fake["pool"]), "protocol": protocol}
        if "kid" in wanted:
            size = min(1000, len(real["pool"]), len(fake["pool"]))
            mean, std = kernel_inception_distance(real["pool"], fake["pool"], 100, size, self.seed)
            self.results["kid"] = {"value": mean, "std": std,
                                   "protocol": {**protocol, "subsets": 100, "subset_size": size,
                                                "kernel": "(x.y/d + 1)^3"}}
        if "is" in wanted:
            mean, std = inception_score(fake["logits"], splits=10)
            self.results["is"] = {"value": mean, "std": std,
                                  "protocol": {**protocol, "splits": 10, "logits": 1008}}

    def classifier(self, wanted: list[str]) -> None:
        data = self.run.cfg.data
        if self.classifier_path is None:
            raise VaeganError(f"{', '.join(wanted)} need a classifier: train one with `vaegan classifier train "
                              f"--dataset {data.name}{f' data.dir={data.dir}' if data.dir else ''}` and pass "
                              f"--classifier FILE")
        network, info = load_classifier(self.classifier_path, self.run.device)
        clf.check_matches(info, self.run.dataset("test").name, self.classifier_path)
        digest = sha256_of(self.classifier_path)
        extractor = feat.classifier_extractor(network)
        fake = self.fakes(extractor)
        test = self.reals("test", f"classifier-{digest[:16]}", extractor)
        protocol = self.protocol(n_real=len(test["features"]), n_fake=len(fake["features"]),
                                 reference="test split", extractor=f"vaegan classifier {self.classifier_path}",
                                 weights_sha256=digest, classifier_test_accuracy=info["test_accuracy"])
        if "fcd" in wanted:
            train = self.reals("train", f"classifier-{digest[:16]}", extractor)
            test_moments = moments(test["features"])  # shared by the FCD and its floor
            value = {"value": frechet_distance(*test_moments, *moments(fake["features"])),
                     "real_vs_real_floor": frechet_distance(*test_moments, *moments(train["features"])),
                     "protocol": {**protocol, "floor": f"train subset of {len(train['features'])} vs test"}}
            if self.run.model.conditional:
                value["intra_class"] = self.intra_class_fcd(test, fake)
            self.results["fcd"] = value
        if "cc" in wanted:
            if not self.run.model.conditional:
                self.skipped["cc"] = "class consistency needs a conditional model"
            else:
                self.results["cc"] = {"value": class_consistency(fake["predicted"], fake["labels"]),
                                      "protocol": {**protocol, "labels": "balanced"}}
        if "pr" in wanted:
            precision, recall = precision_recall(test["features"], fake["features"], k=3)
            self.results["pr"] = {"precision": precision, "recall": recall, "protocol": {**protocol, "k": 3}}
        if "div" in wanted:
            self.results["div"] = {**self.diversity(test, fake, self.run.model.conditional), "protocol": {
                **protocol, "measure": "mean pairwise feature distance of samples / of real test images"
                + (", per class, averaged over classes" if self.run.model.conditional else "")}}

    @staticmethod
    def intra_class_fcd(real: dict[str, np.ndarray], fake: dict[str, np.ndarray]) -> float:
        """FCD between the samples of each class and the test images of that class, averaged over classes."""
        values = [frechet(real["features"][real["labels"] == c], fake["features"][fake["labels"] == c])
                  for c in np.unique(fake["labels"])
                  if (real["labels"] == c).sum() > 1 and (fake["labels"] == c).sum() > 1]
        return float(np.mean(values))

    @staticmethod
    def diversity(real: dict[str, np.ndarray], fake: dict[str, np.ndarray], per_class: bool) -> dict[str, float]:
        """How spread the samples are against real images (of each class when `per_class`): near 1 as varied
        as real images, near 0 a collapse onto few modes. `lowest_class` is the most collapsed class."""
        if not per_class:
            return {"value": mean_pairwise_distance(fake["features"]) / mean_pairwise_distance(real["features"])}
        ratios = [mean_pairwise_distance(fake["features"][fake["labels"] == c])
                  / mean_pairwise_distance(real["features"][real["labels"] == c])
                  for c in np.unique(fake["labels"])
                  if (real["labels"] == c).sum() > 1 and (fake["labels"] == c).sum() > 1]
        if not ratios:
            raise VaeganError("diversity per class needs at least two samples and two test images of a class: "
                              "raise --n")
        return {"value": float(np.mean(ratios)), "lowest_class": float(np.min(ratios))}

    # ---- all -----------------------------------------------------------------------------------------

    def run_all(self, metrics: list[str]) -> dict[str, Any]:
        wanted = set(metrics)
        has_encoder = self.run.model.encoder is not None
        for group, needs_encoder, method in (({"recon"}, True, self.recon), ({"latent"}, True, self.latent),
                                             ({"sharp"}, False, self.sharpness), ({"smooth"}, True, self.smoothness),
                                             (INCEPTION_METRICS, False, self.inception),
                                             (CLASSIFIER_METRICS, False, self.classifier)):
            names = [name for name in METRICS if name in group & wanted]
            if not names:
                continue
            if needs_encoder and not has_encoder:
                self.skipped.update({name: "the model has no encoder" for name in names})
                continue
            try:
                method(names)
            except VaeganError as err:  # a missing file never stops the other metrics
                self.skipped.update({name: str(err) for name in names})
        return {"run": str(self.run.run_dir), "step": self.run.step, "generator": self.generator,
                "n": self.n, "seed": self.seed, "metrics": self.results, "skipped": self.skipped}


def evaluate(run: LoadedRun, metrics: list[str], n: int = 10_000, seed: int = 0,
             inception_weights: str | None = None, classifier_path: Path | None = None,
             cache: Path | None = None, inception_precision: str = "fp32") -> dict[str, Any]:
    """Compute `metrics` for a run and write them to RUN/eval.json (atomically); returns the record."""
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise VaeganError(f"unknown metric(s) {', '.join(unknown)}: choose from {', '.join(METRICS)}")
    record = Evaluation(run, n, seed, inception_weights, classifier_path, cache or cache_dir(),
                        inception_precision).run_all(metrics)
    run.rundir.write_json(run.rundir.eval, record)
    return record
