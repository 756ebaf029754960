"""Diagnostics: the smdebug callback, local versions of SageMaker Debugger's rules and their report,
profilers with the system-utilisation and data-wait measurements, and the profiled-run policy
(``profiled_run``: which defaults a profiled run gets and which callbacks it adds).

An adapter layer: depends on ``training``/``config``; nothing inside the core or training imports it.
"""
