"""casework: governed, agentic business processes on Temporal."""
