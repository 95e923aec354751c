"""Datasets (CIFAR-10, CIFAR-100, the toy shapes10 and the user's own folder or .npz) held in memory, and the
batch loader that feeds training."""

from vaegan.data.augment import augment, draw_augmentation
from vaegan.data.dataset import ImageDataset
from vaegan.data.loader import EVAL_BATCH, BatchLoader, sequential_batches
from vaegan.data.registry import (DATASET_NAMES, NUM_CLASSES, OWN_DATA, load_dataset, load_split,
                                  prepare_dataset, resolve_data_dir)
from vaegan.data.shapes10 import SHAPES10_CLASS_NAMES, make_shapes10

__all__ = [
    "DATASET_NAMES", "EVAL_BATCH", "NUM_CLASSES", "OWN_DATA", "SHAPES10_CLASS_NAMES", "BatchLoader", "ImageDataset",
    "augment", "draw_augmentation", "load_dataset", "load_split", "make_shapes10", "prepare_dataset",
    "resolve_data_dir", "sequential_batches",
]
