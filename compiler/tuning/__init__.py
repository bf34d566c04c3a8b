"""Tuning jobs: Autotune rules and inference, tuning checks, lowering and trial previews."""
