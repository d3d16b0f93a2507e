# The two commands of the README. Both install whatever is missing first and are fast when
# nothing is: apt-get runs only for missing packages, pip only when pyproject.toml changed.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
APT_PACKAGES := python3 python3-venv python3-uno libreoffice-writer-nogui \
	fonts-noto-cjk fonts-symbola fonts-crosextra-carlito fonts-crosextra-caladea fonts-liberation2 \
	poppler-utils softhsm2 opensc chromium
HOST ?= 127.0.0.1
PORT ?= 8000
# Links in mails and the address init prints point at the service as it is run here.
export COUNTERSIGN_BASE_URL ?= http://$(HOST):$(PORT)

.PHONY: run test test-fast screenshots install system postgres lint bench templates fuzz

run: install
	$(BIN)/countersign init
	$(BIN)/countersign serve --host $(HOST) --port $(PORT)

test: install postgres
	$(BIN)/ruff check .
	$(BIN)/pytest

# The fast tier: no LibreOffice, PKI server, SoftHSM, PostgreSQL, S3 or browser.
test-fast: install
	$(BIN)/ruff check .
	$(BIN)/pytest -m "not slow"

# Refresh the README's screenshots with the browser test (the test run itself writes its
# screenshots into a temporary folder, never into docs/).
screenshots: install
	SCREENSHOTS_DIR=$(CURDIR)/docs/screenshots $(BIN)/pytest -p no:cacheprovider -q \
		tests/test_browser.py

install: system $(STAMP)

system:
	@missing=$$(for p in $(APT_PACKAGES); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:" $$missing; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
			apt-get install -y -qq --no-install-recommends $$missing; \
	fi

# PostgreSQL for the tests and benchmarks of the scale-out backend (not for `make run`): the
# machine's own when one answers on 127.0.0.1:5432; otherwise Debian's server, which the test
# run (or bench/scale.py) starts as a private cluster and stops (tests/support/pgcluster.py).
postgres:
	@if ! (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null \
			&& ! compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; then \
		echo "nothing answers on 127.0.0.1:5432: installing Debian packages: postgresql"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
			apt-get install -y -qq --no-install-recommends postgresql; \
	fi

$(STAMP): pyproject.toml
	test -x $(BIN)/python || python3 -m venv $(VENV)
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

lint: install
	$(BIN)/ruff check .

# Every figure against its outside peer, measured side by side in this one run; the table at
# the end is what docs/PERFORMANCE.md records.
BENCH_RESULTS := $(VENV)/bench-results.jsonl
bench: install postgres
	rm -f $(BENCH_RESULTS)
	$(BIN)/python bench/generate.py --results $(BENCH_RESULTS)
	$(BIN)/python bench/sign.py --results $(BENCH_RESULTS)
	$(BIN)/python bench/load.py --clients 50 --results $(BENCH_RESULTS)
	$(BIN)/python bench/scale.py --results $(BENCH_RESULTS)
	$(BIN)/python bench/summary.py $(BENCH_RESULTS)

# Rebuild the shipped .docx templates from doc_templates/build_docx.py.
templates: install
	$(BIN)/python -m doc_templates.build_docx

# Fuzz the upload and verify paths (FUZZ_EXAMPLES inputs, default 10,000; not part of test).
fuzz: install
	$(BIN)/pytest -m fuzz -o timeout=0 -p no:cacheprovider tests/fuzz -q
