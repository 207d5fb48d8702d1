"""OpenAI-compatible HTTP server (FastAPI): chat/completions, completions, models."""
from .app import create_app, serve
from .errors import APIError

__all__ = ["create_app", "serve", "APIError"]
