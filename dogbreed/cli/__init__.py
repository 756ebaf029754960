"""Commands behind ``entry_points/*.py``: one module per command, a shared runner (``runner``) for
logging, one-line errors with exit status 2 and the rank-0 summary, and the generator of the docs' options
reference and module index (``reference``), built from the commands' own parsers.

Each command parses its options with nothing heavy imported, then imports what it runs.
"""
