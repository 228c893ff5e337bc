"""Benchmarks that start a real ragq stack on this machine; results go to docs/BENCHMARKS.md."""
