"""The analytics pipeline: CLI (run.py), options (options.py) and the graph (analytics.py)."""
