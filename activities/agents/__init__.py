"""Agent specifications, one module per process: prompts, typed outputs, offline stand-ins."""
