"""Training options: ``TrainConfig`` (every option, its default and its help) and the argv parser.

A leaf: imports only the standard library and ``dogbreed.core.constants``/``errors``, so ``--help``, a
typo or a bad value is answered before torch or Lightning is loaded.
"""
