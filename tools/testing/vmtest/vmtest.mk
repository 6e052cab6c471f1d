# SPDX-License-Identifier: GPL-2.0
#
# The rig's make targets (tools/testing/vmtest, Documentation/dev-tools/vmtest.rst).
# Included by the top Makefile, which defines KVER and MODULE_KO (the
# onekvm.ko built for KVER).  Variables, all optional:
#
#   KVER=...          kernel (image + headers pair); default: the Makefile's
#   HV=...            onekvm | kvm_amd | both | none (vmtest default: both)
#   CMD="..."         run this in the guest instead of the default selection
#   ARGS="..."        extra arguments for the in-guest command: pytest for
#                     vmtest, `onekvm run` for run, run.py for bench
#   VMTEST_FLAGS=...  extra vmtest options (-v, --timeout SEC, --mem MiB, ...)
#   VMTEST_DEPS=...   what to build first (default: $(MODULE_KO))
#
# Examples:
#   make vmtest KVER=6.1.0-56-amd64 HV=both ARGS='-k vcpu -x'
#   make vmtest CMD='python3 -m pytest -q tools/testing/selftests/kvm/test_vm.py'
#   make vmshell HV=both
#   make run ARGS='--help'

VMTEST_DIR := $(patsubst %/,%,$(dir $(lastword $(MAKEFILE_LIST))))
VMTEST := $(VMTEST_DIR)/vmtest
VMTEST_PYTHON ?= python3
VMTEST_DEPS ?= $(MODULE_KO)
# In the guest: python3 -S plus site-packages, without the site module's
# start-up cost (see vmtest_site.py).
VMTEST_GUEST_PY = python3 -S $(abspath $(VMTEST_DIR))/vmtest_site.py

vmtest_opts = $(if $(KVER),--kver $(KVER)) $(if $(MODULE_KO),--module $(MODULE_KO)) $(VMTEST_FLAGS)

# Runs that create and destroy many kvm_amd VMs use one TCG thread: see
# ACCEL in vmtest (QEMU's multi-threaded TCG makes L1 oops there).
VMTEST_ONE_THREAD = VMTEST_ACCEL="$${VMTEST_ACCEL:-tcg,thread=single}"

.PHONY: vmtest vmshell run bench

vmtest: $(VMTEST_DEPS)
	$(VMTEST_ONE_THREAD) $(VMTEST_PYTHON) $(VMTEST) $(vmtest_opts) --hv $(or $(HV),both) \
		$(if $(CMD),-- $(CMD) $(ARGS),$(if $(ARGS),--pytest-args='$(ARGS)'))

vmshell: $(VMTEST_DEPS)
	$(VMTEST_PYTHON) $(VMTEST) $(vmtest_opts) --hv $(or $(HV),onekvm) --shell

run: $(VMTEST_DEPS)
	$(VMTEST_PYTHON) $(VMTEST) $(vmtest_opts) --hv $(or $(HV),onekvm) --interactive \
		-- $(or $(CMD),$(VMTEST_GUEST_PY) -m onekvm run) $(ARGS)

bench: $(VMTEST_DEPS)
	@echo "# host load average before: $$(cut -d' ' -f1-3 /proc/loadavg)"
	$(VMTEST_PYTHON) $(VMTEST) $(vmtest_opts) --hv both \
		-- $(or $(CMD),$(VMTEST_GUEST_PY) tools/testing/bench/run.py) $(ARGS)
	@echo "# host load average after: $$(cut -d' ' -f1-3 /proc/loadavg)"
