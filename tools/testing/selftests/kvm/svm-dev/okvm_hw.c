// SPDX-License-Identifier: GPL-2.0-only
/*
 * svm-dev: SVM ownership checks. Reads EFER and VM_HSAVE_PA through
 * /dev/cpu/N/msr (msr module) around VM creation on /dev/onekvm, and, when
 * /dev/kvm is a kvm_amd, checks that the two hypervisors refuse each other.
 *
 * Build: cc -O2 -I build/<KVER>/include/generated/uapi -o okvm_hw okvm_hw.c
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <onekvm/kvm.h>

static int failures;
#define CHECK(c, ...) do { if (!(c)) { failures++; printf("FAIL %d: ", __LINE__); printf(__VA_ARGS__); printf("\n"); } } while (0)

static uint64_t rdmsr(int cpu, uint32_t msr)
{
	char path[64];
	uint64_t v = ~0ULL;
	int fd;

	snprintf(path, sizeof(path), "/dev/cpu/%d/msr", cpu);
	fd = open(path, O_RDONLY);
	if (fd < 0 || pread(fd, &v, 8, msr) != 8)
		v = ~0ULL;
	if (fd >= 0)
		close(fd);
	return v;
}

static void show(const char *when)
{
	printf("%-28s EFER %#llx HSAVE %#llx\n", when,
	       (unsigned long long)rdmsr(0, 0xc0000080), (unsigned long long)rdmsr(0, 0xc0010117));
}

static int create_vm(const char *dev, int *sys)
{
	int vm;

	*sys = open(dev, O_RDWR);
	if (*sys < 0)
		return -errno;
	vm = ioctl(*sys, KVM_CREATE_VM, 0);
	return vm < 0 ? -errno : vm;
}

int main(void)
{
	uint64_t efer0 = rdmsr(0, 0xc0000080), hsave0 = rdmsr(0, 0xc0010117);
	int sys, sys2, vm, vm2;

	setvbuf(stdout, NULL, _IONBF, 0);
	if (access("/dev/onekvm", F_OK))
		return 4;	/* skip: onekvm not loaded */
	if (efer0 == ~0ULL)
		printf("no /dev/cpu/0/msr (modprobe msr): EFER/HSAVE not checked\n");
	show("before");
	vm = create_vm("/dev/onekvm", &sys);
	CHECK(vm >= 0, "onekvm CREATE_VM %d", vm);
	show("onekvm VM alive");
	CHECK(efer0 == ~0ULL || (rdmsr(0, 0xc0000080) & (1 << 12)),
	      "SVME not set while a VM exists");
	if (!access("/dev/kvm", F_OK)) {
		vm2 = create_vm("/dev/kvm", &sys2);
		printf("kvm CREATE_VM while onekvm holds SVM: %d\n", vm2);
		CHECK(vm2 < 0, "kvm_amd accepted a VM while onekvm holds SVM");
		if (vm2 >= 0)
			close(vm2);
		close(sys2);
	}
	close(vm);
	close(sys);
	usleep(100000);
	show("onekvm VM closed");
	CHECK(rdmsr(0, 0xc0000080) == efer0 && rdmsr(0, 0xc0010117) == hsave0,
	      "EFER/HSAVE not restored");
	if (!access("/dev/kvm", F_OK)) {
		vm2 = create_vm("/dev/kvm", &sys2);
		CHECK(vm2 >= 0, "kvm CREATE_VM %d", vm2);
		show("kvm VM alive");
		vm = create_vm("/dev/onekvm", &sys);
		printf("onekvm CREATE_VM while kvm_amd holds SVM: %d\n", vm);
		CHECK(vm == -EBUSY, "onekvm CREATE_VM %d, expected -EBUSY", vm);
		if (vm >= 0)
			close(vm);
		close(sys);
		close(vm2);
		close(sys2);
		usleep(100000);
		show("kvm VM closed");
		vm = create_vm("/dev/onekvm", &sys);
		CHECK(vm >= 0, "onekvm CREATE_VM after kvm_amd let go: %d", vm);
		if (vm >= 0)
			close(vm);
		close(sys);
	}
	printf("okvm_hw: %d passed, %d failed\n", failures ? 0 : 1, failures ? 1 : 0);
	return failures ? 1 : 0;
}
