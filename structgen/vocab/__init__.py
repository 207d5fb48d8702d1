"""vocab package."""
