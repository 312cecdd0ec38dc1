"""Benchmarks (each a script: ``python benchmarks/bench_x.py`` or ``python -m benchmarks.bench_x``) and,
in ``benchmarks.harness``, the experiment code they share with the test suite."""
