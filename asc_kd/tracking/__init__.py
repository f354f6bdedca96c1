"""Weights & Biases in one place: the logger, the stage runs and the artifact lineage."""
