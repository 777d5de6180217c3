"""The multi-perspective pipeline (entry name: ads/generators/perspectives.py, which lists what
each module here does)."""
