"""Datasets (CIFAR-10, CIFAR-100 and the toy shapes10) held in memory, and the batch loader that feeds training."""

from vaegan.data.augment import augment, draw_augmentation
from vaegan.data.dataset import ImageDataset
from vaegan.data.loader import EVAL_BATCH, BatchLoader, sequential_batches
from vaegan.data.registry import (DATASET_NAMES, NUM_CLASSES, load_dataset, load_split, prepare_dataset,
                                  resolve_data_dir)
from vaegan.data.shapes10 import SHAPES10_CLASS_NAMES, make_shapes10

__all__ = [
    "DATASET_NAMES", "EVAL_BATCH", "NUM_CLASSES", "SHAPES10_CLASS_NAMES", "BatchLoader", "ImageDataset", "load_dataset", "load_split",
    "make_shapes10",
    "augment", "draw_augmentation", "prepare_dataset", "resolve_data_dir", "sequential_batches",
]
