# jupybox: the commands for a fresh Debian machine, as root.
#   make deps    Debian packages (only what is missing) + .venv with jupybox[test]
#   make deps-demo  only what the demo needs: jupybox's own Debian packages + .venv with jupybox[demo]
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
DEMO_STAMP := $(VENV)/.jupybox-demo-installed

# jupybox itself (the C parts' compiler, seccomp, the bridge's nftables, rootless' id maps and
# fuse-overlayfs); then what the tests and benchmarks use: images and fixtures, the tools jupybox is
# compared with, the browser, the v2 guest's kernels under qemu (kmod's depmod indexes Debian 11's
# kernel, which `make test-fixtures` fetches)
APT_CORE     := python3 python3-venv python3-dev gcc libseccomp2 iproute2 nftables uidmap passwd \
	util-linux acl fuse-overlayfs slirp4netns
APT_PACKAGES := $(APT_CORE) busybox-static crun runc podman skopeo umoci docker-registry mmdebstrap \
	hyperfine jq apache2-utils zstd buildah chromium docker.io docker-compose qemu-system-x86 \
	linux-image-amd64 cpio kmod nodejs npm

# PYTEST_OPTS adds to the defaults (a later --timeout wins): make test TESTS=tests/network PYTEST_OPTS='-x -k bridge'
PYTEST_DEFAULTS := -q -p no:cacheprovider --timeout 300 -rs --durations=15
PYTEST_OPTS ?=
TESTS       ?= tests
BENCH_ARGS  ?=

SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

.PHONY: help deps deps-demo apt-deps apt-core venv bytecode bytecode-demo test test-v2 test-fixtures demo notebooks bench clean

help:
	@echo "make deps | test | test-v2 | demo | notebooks | bench | clean"

# --- dependencies -------------------------------------------------------------
deps: apt-deps $(STAMP) bytecode

# dpkg-query costs ~50 ms; apt-get runs only when a package is missing, and starts and enables no
# service (docker.io's dockerd, docker-registry's registry...: the tests start private ones; see
# scripts/apt-install.sh). npm counts as there when the command is: NodeSource's nodejs package
# carries its own npm and conflicts with Debian's.
apt-deps: PACKAGES = $(APT_PACKAGES)
apt-core: PACKAGES = $(APT_CORE)
apt-deps apt-core:
	@missing=""; \
	for p in $(PACKAGES); do \
	  if [ "$$p" = npm ] && command -v npm >/dev/null; then continue; fi; \
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
# (pip's own progress is shown: a first install downloads ~1 GB with the test extra)
PIP_INSTALL = $(VPY) -m pip install --progress-bar on -e '.[$(1)]' --config-settings editable_mode=compat 2>&1 \
	| { grep -v -e 'is ignored: it is neither a file nor a directory' -e '^Requirement already satisfied' || true; }
$(STAMP): pyproject.toml setup.py $(wildcard jupybox/linux/*.c jupybox/linux/*.h) | $(VPY)
	@# the machine's pip config names local index dirs that may be absent: those warnings are dropped
	$(call PIP_INSTALL,test)
	@touch $@ $(DEMO_STAMP)

$(DEMO_STAMP): pyproject.toml setup.py $(wildcard jupybox/linux/*.c jupybox/linux/*.h) | $(VPY)
	$(call PIP_INSTALL,demo)
	@touch $@

venv: $(STAMP)

# Byte-compile the package: where PYTHONDONTWRITEBYTECODE=1 is set, without .pyc files
# every `jupybox` command compiles its modules again (~50 ms of a ~70 ms `jupybox run`).
# compileall only recompiles what changed.
bytecode: $(STAMP)
	@$(VPY) -m compileall -q jupybox
bytecode-demo: $(DEMO_STAMP)
	@$(VPY) -m compileall -q jupybox

deps-demo: apt-core $(DEMO_STAMP) bytecode-demo

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
demo: deps-demo
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
	rm -rf build *.egg-info jupybox.egg-info test-artifacts benchmarks/results jupybox/linux/_spawn*.so jupybox/linux/jupybox-init $(STAMP) $(DEMO_STAMP)
	find . -name __pycache__ -type d -prune -not -path './$(VENV)/*' -exec rm -rf {} +
