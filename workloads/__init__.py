"""Useful work on torch, and how another machine checks it.

How a job travels through this package, in order (specs/jobs.md):

1. **Describe** (``job.prepare_job``). A researcher's job file becomes a canonical
   ``chain.jobs.JobSpec``: the model and the inputs are put into the content-addressed
   ``store`` and named only by sha256; the spec's hash is the job id and it splits into
   units with a cost in benefit units (exact integers, in ``chain``).
2. **Load** (``models``, ``store``). Models come from installed packages with pinned hashes
   (MiniLM-L6, SmolLM2-135M) and are hashed again when loaded; the breast-cancer data from
   scikit-learn's bundled copy, also pinned. Nothing is downloaded, ever.
3. **Run** (``embed``, ``generate``, ``train``). Each kind's ``run_items`` turns input blobs
   into canonical output bytes, fp32 under ``runtime.deterministic`` (no TF32, no autotuned
   kernels), batched for throughput; training puts its checkpoints into the store.
4. **Commit** (``commit``). Per-item leaves bind (unit id, index, input hash, output); unit
   roots and the batch root are Merkle roots over them, with proofs for single items.
5. **Audit** (``audit``, ``job.audit_job``). Exact checks on every root and input first;
   then each kind's ``check_items`` re-executes a sample chosen with the auditor's own
   randomness and compares within the calibrated ``tolerances`` (specs/tolerances.md).

Floating-point judgement lives here and only here: ``chain`` never sees a float, and
whether a block is valid will never depend on what a GPU computed (specs/consensus.md).

The subpackage ``exact`` is the exception that proves the rule: an integer-only model whose
outputs are the same bits on every machine, so a node can check them by equality and
consensus may depend on them (specs/exact.md).
``tampering`` and ``train.Deviation`` build dishonest workers for calibration and tests.

Importing the package fixes the environment every runner needs before torch or
transformers start: no hub access, deterministic cuBLAS workspaces (they must be set before
CUDA initialises), quiet tokenizers and loaders.
"""

import os

os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
