"""What agents may answer: the typed outputs model calls are validated against.

Each output is registered under a stable name with the pydantic model the answer must match and
the offline stand-in that answers when no model provider is configured.
"""
