# The two commands: `make run` and `make test`. Everything else is a step they call.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
ENGINE_VENV := .venv-engine
PY := $(VENV)/bin/python
# Every target here is development tooling: development mode unless the caller says otherwise
# (the image, compose and a bare daphne run in production mode; see docs/deployment.md).
export DJANGO_DEBUG ?= true
SHELL := /bin/bash
# Quiet installs that still print errors: pip -q, no build-time notices from setuptools
# (PYTHONWARNINGS), and the grep drops the "Location 'file:///…' is ignored" warnings this
# machine's pip configuration causes (scripts/engine_venv.sh does the same).
PIP_INSTALL = PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONWARNINGS=ignore $(VENV)/bin/pip install -q --progress-bar off
QUIET_PIP = 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)

.PHONY: run test venv engine models lint bench browser clean

$(VENV)/.stamp: pyproject.toml
	@echo "make: installing the web environment in $(VENV) (quiet; errors still show)"
	@$(PYTHON) -m venv $(VENV)
	@$(PIP_INSTALL) --upgrade pip $(QUIET_PIP)
	@$(PIP_INSTALL) -e '.[dev]' $(QUIET_PIP)
	@touch $@

venv: $(VENV)/.stamp

# The engine environment (vLLM CPU, torch, TRL, PEFT) lives apart from the web app's.
engine:
	@bash scripts/engine_venv.sh $(ENGINE_VENV)

models: venv engine
	$(PY) manage.py prepare_models

run: venv engine
	$(PY) manage.py migrate --noinput
	$(PY) manage.py prepare_models
	$(PY) manage.py bootstrap
	$(PY) manage.py run_all

test: venv engine
	$(VENV)/bin/ruff check .
	ARENA_LOCAL_MODELS=smollm2 $(PY) manage.py prepare_models
	$(VENV)/bin/pytest $(PYTEST_ARGS)

lint: venv
	$(VENV)/bin/ruff check .

bench: venv engine
	$(PY) bench/ratings_speed.py
	$(PY) bench/key_attack.py
	$(PY) bench/battle_latency.py
	$(PY) bench/stream_shape.py
	$(PY) bench/training_speed.py
	$(PY) bench/training_methods.py

# Debian's Chromium for the browser tests (Playwright cannot download browsers here).
browser:
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium)

clean:
	rm -rf $(VENV) $(ENGINE_VENV) var
