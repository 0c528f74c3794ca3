# The two commands of the README:
#   make run   - set everything up, then run the main job (a local regtest network producing blocks)
#   make test  - set everything up, then run the whole test suite
PY := .venv/bin/python

.PHONY: setup run test lint bench

setup:
	@bash scripts/setup.sh

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
