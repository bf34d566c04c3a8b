"""Data catalogs (YAML) read by trainspec.compiler."""
