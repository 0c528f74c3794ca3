"""Names and limits of exact work that need no torch (the ``fc`` command reads them at
start-up, before any model code is imported). specs/exact.md §1, §4.2, §5."""

MODEL_NAMES = ("smollm2", "tiny")  # the canonical integer models (artifacts.PINNED)
BACKENDS = ("int8", "fp32", "fp64", "int64")  # exact matmul backends (matmul.py)
MAX_SEED_BYTES = 64
MAX_TEMPERATURE_MILLI = 65535
