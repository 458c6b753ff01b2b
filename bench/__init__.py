"""Benchmarks of the chat stack against going direct to the model, measured in one run.

Run: `.venv/bin/python -m bench` (see bench/README.md).
"""
