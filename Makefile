# The two commands: `make run` and `make test`. Everything else is a step they call.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
ENGINE_VENV := .venv-engine
PY := $(VENV)/bin/python
# Every target here is development tooling: development mode unless the caller says otherwise
# (the image, compose and a bare daphne run in production mode; see README "Deployment").
export DJANGO_DEBUG ?= true

.PHONY: run test venv engine models lint bench browser clean

$(VENV)/.stamp: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[dev]'
	touch $@

venv: $(VENV)/.stamp

# The engine environment (vLLM CPU, torch, TRL, PEFT) lives apart from the web app's.
engine:
	bash scripts/engine_venv.sh $(ENGINE_VENV)

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
	$(PY) bench/battle_latency.py
	$(PY) bench/training_speed.py

# Debian's Chromium for the browser tests (Playwright cannot download browsers here).
browser:
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium)

clean:
	rm -rf $(VENV) $(ENGINE_VENV) var
