"""kopf-facing code: `operator.py` registers the indexes and event handlers that route to the runtime."""
