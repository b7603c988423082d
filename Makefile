# Two commands for a fresh machine: `make run` (server on the bundled examples) and
# `make test` (the whole suite). Each bootstraps .venv first; nothing else to install by hand.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test bench lint clean prometheus cluster

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/lambda-scheduler serve

test: $(STAMP) prometheus
	$(BIN)/python -m pytest

# The dashboard test checks every Grafana query against a real Prometheus (Debian's package).
# Installed here when missing and we are root with apt-get; otherwise that test is skipped
# with a message saying so (the CI, .ci/run, installs it first and makes the test required).
# On a machine with systemd the package starts a Prometheus service: it is stopped and
# disabled again, since the test starts its own.
prometheus:
	@if command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; then \
		:; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing prometheus (Debian package) for the dashboard test"; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get install -y -q --no-install-recommends prometheus >/dev/null 2>&1 \
			|| { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends prometheus >/dev/null; }; \
		if command -v systemctl >/dev/null 2>&1 && systemctl is-enabled --quiet prometheus 2>/dev/null; then \
			systemctl disable --now prometheus >/dev/null 2>&1 || true; \
		fi; \
	else \
		echo "note: prometheus is not installed (apt-get install prometheus, as root); tests/test_dashboard.py will be skipped"; \
	fi

# Cluster mode on one machine: nats-server -js and two nodes on the examples (NODE_PORTS).
# Ctrl-C stops all three. Needs Debian's nats-server (apt-get install nats-server).
NATS_PORT ?= 4222
NODE_PORTS ?= 9001 9002
NATS_SERVER ?= $(shell command -v nats-server || echo /usr/sbin/nats-server)
cluster: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[cluster]'
	@store=$$(mktemp -d); trap 'kill 0; rm -rf "$$store"' INT TERM EXIT; \
	$(NATS_SERVER) -js -a 127.0.0.1 -p $(NATS_PORT) -sd "$$store/js" & \
	$(BIN)/python -c "import socket, time; \
	exec('while True:\n try: socket.create_connection((\'127.0.0.1\', $(NATS_PORT))).close(); break\n except OSError: time.sleep(0.1)')"; \
	n=0; for port in $(NODE_PORTS); do n=$$((n + 1)); \
		$(BIN)/lambda-scheduler serve --port $$port --cluster nats://127.0.0.1:$(NATS_PORT) \
			--node-name node$$n --data-dir "$$store/node$$n" & \
	done; wait

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

lint: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[lint]'
	$(BIN)/python -m ruff check scheduler tests benchmarks
	$(BIN)/python -m mypy scheduler

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
