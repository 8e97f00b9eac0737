# The two set-up commands of the README:
#   make demo   create .venv from nothing and run the main job on the bundled examples
#   make test   create .venv from nothing and run the test suite (everything: ruff + pytest)
# and for everyday work:
#   make test-fast   ruff + the tests not marked slow or browser (under 3 minutes on 2 CPUs)
# Both run torch on $OMP_NUM_THREADS threads, 1 by default (`OMP_NUM_THREADS=2 make test`).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch must come first and with this exact pin: it is the CPU wheel; anything else pulls CUDA.
TORCH_PIN := torch==2.13.0

.PHONY: demo test test-fast lint clean browser

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade --quiet pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet $(TORCH_PIN)
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

# Adapter tests: audiocraft 1.3.0 pins torch==2.1 and av==11 (no wheel for Python 3.11), so it is
# installed without dependencies, plus only the modules its import needs; the torch pin on the
# same command line keeps pip from touching torch. PyPI's torchaudio is a CUDA build: without its
# .so files it imports in pure-Python mode (resampling, spectrograms) on the CPU torch.
AUDIOCRAFT_IMPORT_DEPS := av julius einops omegaconf num2words spacy flashy torchmetrics
AUDIOCRAFT_NO_DEPS := audiocraft==1.3.0 torchaudio==2.11.0 xformers==0.0.35

$(VENV)/.adapters: $(VENV)/.installed
	$(BIN)/pip install --quiet $(TORCH_PIN) $(AUDIOCRAFT_IMPORT_DEPS)
	$(BIN)/pip install --quiet --no-deps $(AUDIOCRAFT_NO_DEPS)
	rm -f $(VENV)/lib/python3*/site-packages/torchaudio/lib/*.so
	touch $@

# The distributed engine's tests: Ray Data and datasets (the `ray` extra); the torch pin on the
# same command line keeps pip from touching torch.
$(VENV)/.ray: $(VENV)/.installed
	$(BIN)/pip install --quiet $(TORCH_PIN) -e ".[ray]"
	touch $@

demo: $(VENV)/.installed
	$(BIN)/audiosr-plug info examples/*.wav examples/*.flac
	$(BIN)/audiosr-plug enhance examples/*.wav examples/*.flac -o out/demo --model lite
	$(BIN)/audiosr-plug info out/demo/*

# The preference study's browser tests drive Debian's Chromium (never a downloaded browser).
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
browser:
	@command -v chromium >/dev/null || { $(SUDO) apt-get update -qq && \
		$(SUDO) apt-get install -y -qq chromium chromium-driver >/dev/null; }

test: $(VENV)/.installed $(VENV)/.adapters $(VENV)/.ray browser
	$(BIN)/ruff check .
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(BIN)/python -m pytest -q

test-fast: $(VENV)/.installed $(VENV)/.adapters $(VENV)/.ray
	$(BIN)/ruff check .
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(BIN)/python -m pytest -q -m "not slow and not browser"

lint: $(VENV)/.installed
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
