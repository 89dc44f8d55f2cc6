"""Benchmarks behind ``faultlab bench``: each figure beside a baseline from the same run."""
