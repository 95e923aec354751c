"""Ablation grids: many normal runs on one budget, aggregated over seeds into tables and claims."""
