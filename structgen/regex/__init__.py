"""regex package."""
