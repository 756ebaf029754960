"""Commands behind ``entry_points/*.py``: one module per command and a shared runner (``runner``) for
logging, one-line errors with exit status 2 and the rank-0 summary.

Each command parses its options with nothing heavy imported, then imports what it runs.
"""
