"""Shared pytest setup: keep numeric libraries to the cores CI has, and tests off the network."""

import os

os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("MKL_NUM_THREADS", "2")
os.environ.setdefault("PREFECT_TELEMETRY_ENABLED", "false")
