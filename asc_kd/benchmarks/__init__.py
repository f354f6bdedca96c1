"""Speed and accuracy benchmarks behind ``python -m asc_kd.bench``, and the performance report."""
