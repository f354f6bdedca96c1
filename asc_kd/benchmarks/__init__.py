"""The measurements behind ``python -m asc_kd.bench``, one module per subject: the data path
(``data``), the student's step, epoch and fit (``student``), the teacher and its attention
(``teacher``), a trained student's inference (``deployment``), CP-JKU's own code run beside
asc_kd's (``cpjku``), ``make demo`` stage by stage (``demo``), and the page they make
(``report``)."""

from asc_kd.benchmarks.data import bench_data, bench_keys
from asc_kd.benchmarks.demo import bench_demo
from asc_kd.benchmarks.deployment import bench_eval, bench_quant
from asc_kd.benchmarks.student import bench_epoch, bench_fit_epoch, bench_precision, bench_train
from asc_kd.benchmarks.teacher import bench_attention, bench_teacher

__all__ = [
    "bench_attention",
    "bench_data",
    "bench_demo",
    "bench_epoch",
    "bench_eval",
    "bench_fit_epoch",
    "bench_keys",
    "bench_precision",
    "bench_quant",
    "bench_teacher",
    "bench_train",
]
