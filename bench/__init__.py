"""Benchmarks: `make bench` (see run_bench.py)."""
