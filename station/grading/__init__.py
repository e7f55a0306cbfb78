"""Grading core: pure numpy/scipy figures, profile rules and matching (no Qt, SQL or I/O)."""
