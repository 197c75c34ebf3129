"""The fuzz target is a program (run by test_fuzz_loaders.py), not a test module: it needs
atheris at import time."""

collect_ignore = ["fuzz_loaders.py"]
