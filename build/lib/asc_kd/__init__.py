"""asc_kd: low-complexity acoustic scene classification with knowledge distillation."""

__version__ = "0.1.0"
