"""Benchmarks of the chat side (not tests): ``python -m bench.run``; see bench/README.md."""
