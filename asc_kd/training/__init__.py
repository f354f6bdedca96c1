"""Training: the LightningCLI behind ``python -m asc_kd.fit`` (and the pipeline's fits)."""
