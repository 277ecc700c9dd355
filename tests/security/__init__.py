"""Regression tests for issue 13: each finding of the outside attack, named after it."""
