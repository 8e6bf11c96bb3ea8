# jupybox: the commands for a fresh Debian machine, as root.
#   make deps    Debian packages (only what is missing) + .venv with jupybox[test]
#   make test    the test suite (non-zero exit on any failure)
#   make demo    the quickstart notebook, then a short CLI tour, on the built-in `host` image
#   make notebooks  execute notebooks/ and store their outputs (the tests check they are current)
#   make bench   jupybox against its anchors (crun, runc, podman, unshare), interleaved

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV   ?= .venv
VPY    := $(VENV)/bin/python
STAMP  := $(VENV)/.jupybox-installed

APT_PACKAGES := python3 python3-venv python3-dev gcc libseccomp2 busybox-static crun runc \
	podman skopeo umoci docker-registry mmdebstrap hyperfine jq uidmap apache2-utils zstd \
	iproute2 nftables buildah chromium docker.io acl fuse-overlayfs slirp4netns passwd util-linux \
	docker-compose qemu-system-x86 linux-image-amd64 cpio nodejs

# PYTEST_OPTS adds to the defaults (a later --timeout wins): make test TESTS=tests/network PYTEST_OPTS='-x -k bridge'
PYTEST_DEFAULTS := -q -p no:cacheprovider --timeout 300 -rs --durations=15
PYTEST_OPTS ?=
TESTS       ?= tests
BENCH_ARGS  ?=

SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

.PHONY: help deps apt-deps venv bytecode test test-v2 test-fixtures demo notebooks bench clean

help:
	@echo "make deps | test | test-v2 | demo | notebooks | bench | clean"

# --- dependencies -------------------------------------------------------------
deps: apt-deps $(STAMP) bytecode

# dpkg-query costs ~50 ms; apt-get runs only when a package is missing, and starts and enables no
# service (docker.io's dockerd, docker-registry's registry...: the tests start private ones; see
# scripts/apt-install.sh).
apt-deps:
	@missing=""; \
	for p in $(APT_PACKAGES); do \
	  if ! dpkg-query -W -f='$${Status}' "$$p" 2>/dev/null | grep -q 'install ok installed'; then \
	    missing="$$missing $$p"; \
	  fi; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "apt: installing$$missing"; \
	  $(SUDO) bash scripts/apt-install.sh $$missing; \
	fi

$(VPY):
	$(PYTHON) -m venv $(VENV)

# Re-installs only when pyproject.toml, setup.py or the C extension's source is newer than the stamp
# (the install compiles jupybox/linux/_spawn.c and the static jupybox/linux/jupybox-init in place). editable_mode=compat: a plain
# path entry instead of an import finder, which costs ~10 ms at every start of the CLI.
$(STAMP): pyproject.toml setup.py $(wildcard jupybox/linux/*.c jupybox/linux/*.h) | $(VPY)
	@# the machine's pip config names local index dirs that may be absent: drop those warnings
	$(VPY) -m pip install -q -e '.[test]' --config-settings editable_mode=compat 2>&1 | { grep -v 'is ignored: it is neither a file nor a directory' || true; }
	@touch $@

venv: $(STAMP)

# Byte-compile the package: where PYTHONDONTWRITEBYTECODE=1 is set, without .pyc files
# every `jupybox` command compiles its modules again (~50 ms of a ~70 ms `jupybox run`).
# compileall only recompiles what changed.
bytecode: $(STAMP)
	@$(VPY) -m compileall -q jupybox

# --- test ---------------------------------------------------------------------
# tests/ includes tests/v2guest, what test-v2 runs alone: the cgroup v2 path on Debian's kernel
# booted under qemu (linux-image-amd64: its kernel and modules are only read, never booted on the host)
# The suite runs on the defaults a user has (the default network is a bridge, as docker's) in a
# network namespace of its own, so the bridges and nftables tables it makes live and die there;
# what it needs from the network (a Debian rootfs from the mirror) is cached first.
IN_TEST_NETNS := $(VPY) -m jupybox.testing.netns --

test: deps test-fixtures
	$(IN_TEST_NETNS) $(VPY) -m pytest $(PYTEST_DEFAULTS) $(PYTEST_OPTS) $(TESTS)

test-v2: deps test-fixtures
	$(IN_TEST_NETNS) $(VPY) -m pytest $(PYTEST_DEFAULTS) $(PYTEST_OPTS) tests/v2guest

test-fixtures: deps
	$(VPY) -m jupybox.testing.prefetch

# --- demo ---------------------------------------------------------------------
# the main job: the quickstart notebook on the built-in `host` image, then a short CLI tour
demo: deps
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VPY) scripts/demo.py
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" bash scripts/demo.sh

# --- notebooks ----------------------------------------------------------------
# executes every notebook as root (in a network namespace of its own, as the tests) and writes it
# back with its outputs; NOTEBOOKS=notebooks/04-cgroups.ipynb for one. A notebook that fails is
# not written. test_notebook checks that the committed outputs are those of the current code.
NOTEBOOKS ?=
notebooks: deps
	$(IN_TEST_NETNS) $(VPY) -m tests.notebooks.notebook_run --write $(NOTEBOOKS)

# --- benchmarks ---------------------------------------------------------------
bench: deps
	$(VPY) benchmarks/run.py $(BENCH_ARGS)

clean:
	rm -rf build *.egg-info jupybox.egg-info test-artifacts benchmarks/results jupybox/linux/_spawn*.so jupybox/linux/jupybox-init $(STAMP)
	find . -name __pycache__ -type d -prune -not -path './$(VENV)/*' -exec rm -rf {} +
