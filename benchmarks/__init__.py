"""Benchmarks: each script compares rmdata with a baseline in one run and prints one JSON line."""
