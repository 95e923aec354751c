"""Pictures of runs: grids, PNG files, sample grids."""

from vaegan.viz.grid import make_grid, reconstruction_grid, save_png, to_uint8
from vaegan.viz.samples import class_conditional_samples, fixed_latents, save_sample_grid

__all__ = ["make_grid", "reconstruction_grid", "save_png", "to_uint8", "class_conditional_samples",
           "fixed_latents", "save_sample_grid"]
