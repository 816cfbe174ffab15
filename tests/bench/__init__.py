"""Smoke tests of the benchmarks' pure parts (bench/)."""
