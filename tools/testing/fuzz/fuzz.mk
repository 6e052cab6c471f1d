# SPDX-License-Identifier: GPL-2.0-only
#
# Robustness targets (tools/testing/fuzz, Documentation/virt/onekvm/robustness.rst).
# Included by the top Makefile, which defines KVER, MODULE_KO, VMTEST,
# VMTEST_PYTHON, VMTEST_DEPS and vmtest_opts.
#
#   make fuzz-ci                 bounded pass (CI, part of test-all): one rig
#                                boot, both hypervisors, ~2-3 min of rig time
#   make fuzz [SEQS=100000] [SEED=n] [CYCLES=1000] [FUZZ_TIME=sec] [COMPARE=1]
#             [JOBS=2] [FUZZ_FLAGS=--trace]
#                                the long run: ioctl fuzzer (JOBS worker
#                                processes), churn with module reloads,
#                                hostile guests
#   make fuzz-replay SEED=0x... [DEV=/dev/onekvm]   one sequence, verbosely
#                                (both on FUZZ_QEMU: the QEMU of
#                                FUZZ_QEMU_SUITE, which scripts/fuzz-qemu
#                                makes on first use)
#   make fuzz-host-test          the tools' own host-side tests (part of `make test`)
#
# Every target takes KVER= like the rest (e.g. KVER=6.1.0-56-amd64).

FUZZ_DIR := tools/testing/fuzz
FUZZ_PY := $$VMTEST_PY $(FUZZ_DIR)
FUZZ_KO := $(CURDIR)/$(MODULE_KO)
SEQS ?= 100000
CYCLES ?= 1000
FUZZ_TIME ?= 0
FUZZ_OPS ?= 24
# Fuzzer worker processes for `make fuzz` (the rig's L1 has 2 CPUs; worker w
# runs sequences w, w+JOBS, ...: every seed still replays alone).  fuzz-ci
# keeps one: it runs L1 on one TCG thread, where a second worker only
# time-shares it.
JOBS ?= 2
FUZZ_RESULTS ?= build/vmtest-results/fuzz-$(KVER)
# The long runs' QEMU (a directory holding qemu-system-x86_64): the rig's
# 10.0.2 segfaults on a real-mode MOV to segment register 6 or 7 within a
# few hundred sequences, and every QEMU 9.0-10.0 stores a page-straddling
# FNSTENV or FXSAVE into the wrong page, i.e. corrupts L1 memory within a
# few thousand (robustness.rst "Rig limits").  scripts/fuzz-qemu makes one
# on first use: FUZZ_QEMU_SUITE=patched (the default: trixie's 10.0.13
# built from source with tools/testing/fuzz/qemu/*.patch, a few minutes),
# trixie (10.0.13 as packaged) or bookworm (7.2).  FUZZ_QEMU=/usr/bin
# takes the rig's.
FUZZ_QEMU_SUITE ?= patched
FUZZ_QEMU ?= build/fuzz-qemu-$(FUZZ_QEMU_SUITE)/bin
# L1's memory debugging for the long runs: a write to a freed page or slab
# object is reported where it is found (robustness.rst, session 10's vmalloc
# WARN); no measurable cost in the rig.  FUZZ_KDEBUG= turns it off.
FUZZ_KDEBUG ?= page_poison=1 slub_debug=FZPU
fuzz_path = PATH=$(abspath $(FUZZ_QEMU)):$$PATH VMTEST_APPEND="$$VMTEST_APPEND $(FUZZ_KDEBUG)"
DEV ?= /dev/onekvm

# Short pass: bounded by time, so a slow loaded machine only runs fewer
# sequences, and by count, so a fast one never runs more than were seen to
# pass: QEMU 10 (the rig's CPU) segfaults at about sequence 300-350 of
# seed 0x5eed (robustness.rst, "Open problems"; the 45 s ran 243-265).  A
# fixed seed keeps CI's sequences the same from run to run (`make fuzz`
# explores); every failure prints the sequence's seed, and
# `make fuzz-replay SEED=` replays it.
FUZZ_CI_SEED ?= 0x5eed
FUZZ_CI_SEQS ?= 260
# kvm_amd's share first and small (robustness.rst, "Open problems"): the
# hostile guests, saved, then onekvm's compared with them; fuzzing and
# churn on onekvm.  `make fuzz COMPARE=1` compares the fuzzer's errnos.
FUZZ_CI_CMD = R=$$VMTEST_RESULTS && \
	$(FUZZ_PY)/hostile.py --dev /dev/kvm --save $$R/hostile-kvm_amd.json && \
	$(FUZZ_PY)/hostile.py --dev /dev/onekvm --against $$R/hostile-kvm_amd.json && \
	$(FUZZ_PY)/ioctlfuzz.py --dev /dev/onekvm --seed $(FUZZ_CI_SEED) --seqs $(FUZZ_CI_SEQS) \
		--time 45 --json $$R/ioctlfuzz.json && \
	$(FUZZ_PY)/churn.py --dev /dev/onekvm --cycles 20 --kill-every 5 --reload-every 10 \
		--module $(FUZZ_KO) --seed $(FUZZ_CI_SEED)

FUZZ_LONG_CMD = $(FUZZ_PY)/hostile.py --dev /dev/onekvm $(if $(COMPARE),--dev /dev/kvm) && \
	$(FUZZ_PY)/ioctlfuzz.py --dev /dev/onekvm $(if $(COMPARE),--compare /dev/kvm) \
		$(if $(SEED),--seed $(SEED)) --seqs $(SEQS) --time $(FUZZ_TIME) --ops $(FUZZ_OPS) --jobs $(JOBS) \
		--json $$VMTEST_RESULTS/ioctlfuzz.json $(FUZZ_FLAGS) && \
	$(FUZZ_PY)/churn.py --dev /dev/onekvm --cycles $(CYCLES) --kill-every 10 --reload-every 100 \
		--module $(FUZZ_KO) $(if $(SEED),--seed $(SEED))

.PHONY: fuzz fuzz-ci fuzz-replay fuzz-prebuild fuzz-host-test

# The rig's root is read-only: assemble the guests on the host first.
fuzz-prebuild: selftests-prebuild
	@$(PYTHON) $(FUZZ_DIR)/hostile.py --prebuild
	@$(PYTHON) $(FUZZ_DIR)/churn.py --prebuild
	@$(PYTHON) $(FUZZ_DIR)/handover.py --prebuild

fuzz-ci: $(VMTEST_DEPS) fuzz-prebuild
	$(VMTEST_ONE_THREAD) $(VMTEST_PYTHON) $(VMTEST) $(vmtest_opts) --timeout 900 --hv both \
		--results $(FUZZ_RESULTS)-ci -- sh -c '$(FUZZ_CI_CMD)'

build/fuzz-qemu-%/bin/qemu-system-x86_64:
	scripts/fuzz-qemu $*

# Rebuilt when the patches or the recipe change (scripts/fuzz-qemu checks
# their hash too, so a mere touch costs nothing).
build/fuzz-qemu-patched/bin/qemu-system-x86_64: $(wildcard $(FUZZ_DIR)/qemu/*.patch) \
		$(FUZZ_DIR)/qemu/build.sh
	scripts/fuzz-qemu patched

fuzz: $(VMTEST_DEPS) fuzz-prebuild $(FUZZ_QEMU)/qemu-system-x86_64
	$(fuzz_path) $(VMTEST_PYTHON) $(VMTEST) $(vmtest_opts) --timeout $(or $(FUZZ_TIMEOUT),86400) \
		--hv $(if $(COMPARE),both,onekvm) --results $(FUZZ_RESULTS) -- sh -c '$(FUZZ_LONG_CMD)'

fuzz-replay: $(VMTEST_DEPS) fuzz-prebuild $(FUZZ_QEMU)/qemu-system-x86_64
	$(fuzz_path) $(VMTEST_PYTHON) $(VMTEST) $(vmtest_opts) --timeout 600 --hv both \
		--results $(FUZZ_RESULTS)-replay -- sh -c '$(FUZZ_PY)/ioctlfuzz.py --dev $(DEV) \
		--replay $(SEED) --ops $(FUZZ_OPS)'

# Host-side tests of the tools themselves (no device), part of `make test`.
fuzz-host-test: python
	$(PYTHON) -m pytest -q -p no:cacheprovider $(FUZZ_DIR)/test_fuzz_host.py

test: fuzz-host-test

# CI: the bounded pass runs with the rest of the rig tests.
test-all: fuzz-ci
