"""Placeholder entry point for examples/training/pytorch-script.yaml (compile-only example).

The runnable script-mode example is examples/digits/train.py.
"""

if __name__ == "__main__":
    raise SystemExit("compile-only example: see examples/digits for a job that runs locally")
