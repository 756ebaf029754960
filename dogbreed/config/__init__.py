"""Training options: the sections (``sections``: one typed dataclass per concern, each option's flag, default
and help), ``TrainConfig`` (``options``: the sections together, the --demo presets, range checks, the list of
sections and their options) and the argv parser (``parser``: flat flags, grouped by section in --help).

A leaf: imports only the standard library and ``dogbreed.core.constants``/``errors``, so ``--help``, a
typo or a bad value is answered before torch or Lightning is loaded.
"""
