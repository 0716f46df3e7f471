"""Policies: one YAML per process, optional pure rules modules, the directory and masking."""
