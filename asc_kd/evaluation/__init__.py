"""Trained models over data: inference (windows, precision, processes), the DCASE metrics, and
teacher ensembles (their logits for distillation, and Table 1)."""
