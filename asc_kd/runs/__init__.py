"""The whole system as runs: the pipeline's stages, where its jobs execute, results and tables,
and the DCASE submission package of student runs."""
