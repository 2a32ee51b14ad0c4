"""Deliberately broken variants of the Nimbus example plugin (see variants.py)."""
