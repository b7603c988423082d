"""Helpers shared by the benchmark scripts: processes and /proc, the servers under test, wrk,
machine facts, installing what is missing, and the BENCHMARKS.md report."""
