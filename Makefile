# Two commands on a fresh machine: `make demo` and `make test`.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev

.PHONY: demo test test-fast venv clean bench device-wheels

$(BIN)/python:
	$(PY) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# torch first, pinned: on these machines torch==2.13.0 is a local CPU wheel.
$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e .
	touch $@

$(DEV_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

venv: $(STAMP)

# Quiet: one line a step. `make demo V=1` streams every run's events and logs.
demo: $(STAMP)
	$(BIN)/python -m flows.demo $(if $(V),-v)

# Every test (CI: .ci/run). `make test-fast`: all but the `slow` ones, the loop to run while working
# (under 3 minutes on 2 cores; a test over 20 s is marked slow, see tests/conftest.py).
test: $(DEV_STAMP)
	$(BIN)/python -m pytest

test-fast: $(DEV_STAMP)
	$(BIN)/python -m pytest -m "not slow"

# Every benchmark (~15 min on 2 cores) -> benchmarks/RESULTS.md, then the README's figures from it.
bench: $(DEV_STAMP)
	$(BIN)/python -m benchmarks.run_all

# The packages the H200 device image lacks, as Python 3.12 wheels of the versions installed here, in
# .whl/ (ignored) for benchmarks/device_check.sh: the device call carries .whl.
DEVICE_WHEELS := zarr icechunk numcodecs donfig google-crc32c pydantic pydantic-core typing-inspection annotated-types
WHEEL_PLATFORMS := $(foreach n,17 24 27 28 31 34,--platform manylinux_2_$(n)_x86_64) --platform manylinux2014_x86_64
device-wheels: $(STAMP)
	rm -rf .whl && mkdir -p .whl
	for p in $(DEVICE_WHEELS); do \
	  v=$$($(BIN)/python -c "import importlib.metadata as m; print(m.version('$$p'))") && \
	  $(BIN)/python -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
	    $(WHEEL_PLATFORMS) -d .whl "$$p==$$v" || exit 1; \
	done
	ls .whl

clean:
	rm -rf $(VENV) .demo .whl
