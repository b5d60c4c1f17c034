"""The shipped persona library (YAML files)."""
