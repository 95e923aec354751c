# Two commands do all set-up: `make test` and `make demo`. Both create .venv when it is absent.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# torch is pinned for the install path: an unpinned install pulls the newest torch with GBs of CUDA wheels.
TORCH_PIN := torch==2.13.0
STAMP := $(VENV)/.installed
ARGS ?=

.PHONY: test demo install clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH_PIN)
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist worksteal -q --durations=15

demo: $(STAMP)
	$(BIN)/vaegan demo $(ARGS)

clean:
	rm -rf $(VENV) runs/demo
