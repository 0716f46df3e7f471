"""The reliability suite: faults survived, bad input refused, nothing lost (docs/reliability.md)."""
