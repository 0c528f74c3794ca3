# The two commands of the README:
#   make run   - set everything up, then run the main job (a regtest node producing blocks with
#                payments, then useful work: an embedding job and a training sweep, audited,
#                and one exact draw re-checked bit for bit)
#   make test  - set everything up, then run the whole test suite
# CUDA=1 (e.g. make setup CUDA=1) installs torch's CUDA build instead of the CPU one, for
# fcd/fc --device cuda (scripts/setup.sh --cuda).
PY := .venv/bin/python

.PHONY: setup run test lint bench

setup:
	@bash scripts/setup.sh $(if $(filter 1,$(CUDA)),--cuda)

run: setup
	$(PY) -m testnet.solo

test: setup
	$(PY) -m ruff check .
	$(PY) -m mypy
	$(PY) -m pytest -q

lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

bench: setup
	$(PY) bench/validate_block.py
	$(PY) bench/connect_blocks.py
	$(PY) bench/sync.py
	$(PY) bench/propagation.py
	$(PY) bench/runner_overhead.py
	$(PY) bench/coin_selection.py
	$(PY) bench/calibrate.py --no-write
	$(PY) bench/exact_identity.py
	$(PY) bench/exact_quality.py
	$(PY) bench/exact_speed.py
	$(PY) bench/work_verify.py
	$(PY) bench/sync_work.py --blocks 100
