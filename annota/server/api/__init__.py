"""The HTTP API: the FastAPI app, its request schemas, and ``serve``."""
