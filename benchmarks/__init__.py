"""Benchmarks: side-by-side scripts, each ending with one JSON line. Not part of the installed package.

Run them as modules from the checkout's root (``python -m benchmarks.bench_x``; ``benchmarks/run_all.py``
starts each one that way with the root as working directory), so that ``benchmarks`` and the test
support code they share with the suite (``tests.support``: synthetic inputs, kill trials, hostile
files, the smplx reference path) import from the checkout."""
