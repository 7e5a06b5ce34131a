"""Helpers shared by the built-in scripts (not scripts themselves)."""
