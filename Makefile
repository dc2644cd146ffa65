# The README's two commands: `make demo` and `make test`. Each creates or refreshes .venv first.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: venv demo test lint bench clean

venv: $(STAMP)

# Re-install when the dependency list changes; torch is pinned ==2.13.0 (the CPU wheel on disk).
$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

demo: venv bpf
	$(VENV)/bin/beth demo

test: venv bpf
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/pytest

lint: venv
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

clean:
	rm -rf $(VENV) build .pytest_cache .ruff_cache .hypothesis

# eBPF process sensor (issue 5): the CO-RE object, built next to its source inside the package, where
# beth.sensors.process looks for it. vmlinux.h comes from the running kernel's BTF. Without clang,
# bpftool or BTF the build is skipped with a message (the process sensor then says it is missing).
BPF_DIR   := src/beth/sensors/bpf
BPF_OBJ   := $(BPF_DIR)/process.bpf.o
BPF_CLANG ?= clang
BPFTOOL   ?= $(shell command -v bpftool 2>/dev/null || echo /usr/sbin/bpftool)

.PHONY: bpf
bpf:
	@if ! command -v $(BPF_CLANG) >/dev/null 2>&1; then \
	  echo "make bpf: $(BPF_CLANG) not found: skipping the eBPF build, so the process sensor cannot run here" \
	       "(apt install clang llvm libbpf-dev bpftool, then run make bpf)"; \
	elif [ ! -x "$(BPFTOOL)" ] || [ ! -r /sys/kernel/btf/vmlinux ]; then \
	  echo "make bpf: bpftool or /sys/kernel/btf/vmlinux missing: skipping the eBPF build, so the process" \
	       "sensor cannot run here (apt install bpftool; the kernel needs CONFIG_DEBUG_INFO_BTF=y)"; \
	else $(MAKE) --no-print-directory $(BPF_OBJ); fi

$(BPF_DIR)/vmlinux.h:
	$(BPFTOOL) btf dump file /sys/kernel/btf/vmlinux format c > $@.tmp && mv $@.tmp $@

$(BPF_OBJ): $(BPF_DIR)/process.bpf.c $(BPF_DIR)/process.h $(BPF_DIR)/vmlinux.h
	$(BPF_CLANG) -g -O2 -target bpf -D__TARGET_ARCH_x86 -Wall -I$(BPF_DIR) -c $< -o $@
