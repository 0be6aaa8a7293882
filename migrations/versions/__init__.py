"""Revisions, named YYYY_MM_DD_NNNN_slug.py, each with a one-line why in its docstring."""
