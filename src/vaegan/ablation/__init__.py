"""Ablation grids: many normal runs on one budget, aggregated over seeds into tables and claims."""

FUSE_CHOICES = ("auto", "off")  # auto: cells that can train as one fused group do (runner.fused_groups)
MEASURE_IMAGES = 2000  # by default, the train and test images (and samples) each cell is measured on
