"""Governance: policy models, loading, the rules every process shares."""
