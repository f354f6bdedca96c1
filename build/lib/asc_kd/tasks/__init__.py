"""LightningModules: what is trained and how (classification, distillation)."""

from asc_kd.tasks.classification import ClassificationTask, lr_factor
from asc_kd.tasks.distillation import DistillationTask

__all__ = ["ClassificationTask", "DistillationTask", "lr_factor"]
