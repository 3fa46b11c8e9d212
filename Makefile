# The two commands a newcomer needs:  `make demo`  and  `make test`.
VENV   ?= .venv
PY     := $(VENV)/bin/python
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test lint policy-test bundle bundle-check bench bench-proxy bench-instructions clean

install: $(STAMP)

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q --no-deps --ignore-requires-python opa-golib-python-bindings==0.4.4
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

demo: install
	$(BIN)/gateway demo

lint: install
	$(BIN)/ruff check gateway tests bench
	$(BIN)/ruff format --check gateway tests bench
	$(BIN)/mypy

policy-test: install
	$(BIN)/gateway policy test rego policy-tests
	$(BIN)/gateway policy test rego policy-tests --coverage --threshold 90 > $(VENV)/rego-coverage.json

bundle: install
	$(BIN)/gateway bundle build --rego rego -o bundles/gateway.tar.gz

bundle-check: install
	$(BIN)/gateway bundle build --rego rego -o $(VENV)/bundle-check.tar.gz
	cmp bundles/gateway.tar.gz $(VENV)/bundle-check.tar.gz || \
	  (echo "bundles/gateway.tar.gz does not match rego/: run 'make bundle' and commit it" >&2; exit 1)

test: install lint policy-test bundle-check
	scripts/ensure-redis
	scripts/ensure-postgres
	$(PY) -m pytest; rc=$$?; if [ $$rc -eq 5 ]; then echo "pytest collected no tests" >&2; fi; exit $$rc

bench: install
	GOGC=400 $(PY) bench/decision_latency.py

clean:
	rm -rf $(VENV)

bench-proxy: install
	command -v wrk >/dev/null && command -v nginx >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk nginx-light)
	$(PY) bench/proxy_overhead.py

bench-instructions: install
	command -v valgrind >/dev/null && command -v nginx >/dev/null || (apt-get update -qq && apt-get install -y -qq valgrind nginx-light)
	$(PY) bench/instructions.py
