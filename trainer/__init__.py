"""trainspec.trainer: the sifting loop, the local runner and the local tuner.

Depends on trainspec.v1 (a plan) only, never on trainspec.compiler.
"""
