"""Foundation Coin: useful work on torch, and its verification (see ``doc.md``).

Importing the package fixes the environment every runner needs before torch or
transformers start: no hub access (models come from the content-addressed store only),
deterministic cuBLAS workspaces (must be set before CUDA initialises), quiet tokenizers.
"""

import os

os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
