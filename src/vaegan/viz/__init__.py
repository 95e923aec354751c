"""Pictures of runs: grids, PNG files."""

from vaegan.viz.grid import make_grid, reconstruction_grid, save_png, to_uint8

__all__ = ["make_grid", "reconstruction_grid", "save_png", "to_uint8"]
