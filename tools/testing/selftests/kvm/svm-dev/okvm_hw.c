// SPDX-License-Identifier: GPL-2.0-only
/*
 * svm-dev: SVM ownership between onekvm and kvm_amd, checked in hardware.
 *
 * Reads (and, to fake "what was found", writes) EFER and VM_HSAVE_PA on
 * every online CPU through /dev/cpu/N/msr (it loads the msr module when it
 * is missing) and checks, on every CPU, that:
 *  - a onekvm VM sets SVME and its own HSAVE, and destroying the last VM
 *    puts back exactly what was found (also a non-zero HSAVE);
 *  - a CPU where someone else set SVME makes CREATE_VM fail with -EBUSY and
 *    the rollback leaves every CPU as found;
 *  - onekvm and kvm_amd refuse each other's VMs with -EBUSY and hand SVM
 *    over cleanly in both directions, also when VMs are created, run and
 *    destroyed concurrently on both devices from several threads;
 *  - CPU hotplug (offline/online cpu1) while a VM lives or after it is gone
 *    leaves no stale ownership (VMRUN works there, kvm_amd's SVME is never
 *    cleared by onekvm);
 *  - unloading kvm_amd and onekvm (rmmod, then loaded again) leaves EFER
 *    and HSAVE as found, and the other hypervisor works afterwards.
 * Without the msr module the MSR checks are skipped (said so), the -EBUSY
 * and run checks still run. Exit 4 (skip) without /dev/onekvm.
 *
 * Build: cc -O2 -pthread -I build/<KVER>/include/generated/uapi -o okvm_hw okvm_hw.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <onekvm/kvm.h>

#define MSR_EFER	0xc0000080
#define MSR_HSAVE	0xc0010117
#define EFER_SVME	(1ULL << 12)
#define MAXCPU		64
#define FAKE_HSAVE	0x7f000ULL

static int failures, checks;
static int ncpu;		/* CPUs 0..ncpu-1 seen at start */
static int have_msr, can_write_msr, have_kvm;

#define CHECK(c, ...) do { checks++; if (!(c)) { failures++; \
	printf("FAIL %d: ", __LINE__); printf(__VA_ARGS__); printf("\n"); } } while (0)

/*
 * kvm's answer when SVM is taken: -EBUSY on 6.1, -EIO on 6.12 (its CPU
 * hotplug callback fails); onekvm's is always -EBUSY.
 */
static int refused(const char *dev, int r)
{
	return r == -EBUSY || (r == -EIO && !strcmp(dev, "/dev/kvm"));
}

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

static int wrmsr(int cpu, uint32_t msr, uint64_t v)
{
	char path[64];
	int fd, ok;

	snprintf(path, sizeof(path), "/dev/cpu/%d/msr", cpu);
	fd = open(path, O_WRONLY);
	if (fd < 0)
		return -1;
	ok = pwrite(fd, &v, 8, msr) == 8;
	close(fd);
	return ok ? 0 : -1;
}

static int cpu_online(int cpu)
{
	char path[80], c = '1';
	int fd;

	snprintf(path, sizeof(path), "/sys/devices/system/cpu/cpu%d/online", cpu);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return cpu == 0 || !access(path, F_OK) ? 1 : 0;
	if (read(fd, &c, 1) != 1)
		c = '1';
	close(fd);
	return c == '1';
}

static int set_online(int cpu, int on)
{
	char path[80];
	int fd, ok;

	snprintf(path, sizeof(path), "/sys/devices/system/cpu/cpu%d/online", cpu);
	fd = open(path, O_WRONLY);
	if (fd < 0)
		return -1;
	ok = write(fd, on ? "1" : "0", 1) == 1;
	close(fd);
	return ok ? 0 : -1;
}

struct snap {
	uint64_t efer[MAXCPU], hsave[MAXCPU];
};

static void take(struct snap *s)
{
	int c;

	for (c = 0; c < ncpu; c++) {
		s->efer[c] = cpu_online(c) ? rdmsr(c, MSR_EFER) : ~0ULL;
		s->hsave[c] = cpu_online(c) ? rdmsr(c, MSR_HSAVE) : ~0ULL;
	}
}

/* Every online CPU as in @want (offline CPUs are not compared). */
static void expect_found(const struct snap *want, const char *when)
{
	struct snap now;
	int c;

	if (!have_msr)
		return;
	take(&now);
	for (c = 0; c < ncpu; c++) {
		if (now.efer[c] == ~0ULL || want->efer[c] == ~0ULL)
			continue;
		CHECK(now.efer[c] == want->efer[c] && now.hsave[c] == want->hsave[c],
		      "%s: cpu%d EFER %#llx HSAVE %#llx, found %#llx %#llx", when, c,
		      (unsigned long long)now.efer[c], (unsigned long long)now.hsave[c],
		      (unsigned long long)want->efer[c], (unsigned long long)want->hsave[c]);
	}
}

/* SVME set with some HSAVE on every online CPU (a hypervisor holds SVM). */
static void expect_held(const struct snap *found, const char *when)
{
	int c;

	if (!have_msr)
		return;
	for (c = 0; c < ncpu; c++) {
		uint64_t efer = rdmsr(c, MSR_EFER);

		if (efer == ~0ULL)
			continue;
		CHECK(efer & EFER_SVME, "%s: cpu%d EFER %#llx has no SVME", when, c,
		      (unsigned long long)efer);
		CHECK(rdmsr(c, MSR_HSAVE) != found->hsave[c] || !found->hsave[c],
		      "%s: cpu%d HSAVE still the one found", when, c);
	}
}

/* A VM with one vCPU in real mode that executes HLT at 0x1000. */
struct vm {
	int sys, fd, vcpu, mmsz;
	struct kvm_run *run;
	void *mem;
};

static int vm_open(struct vm *v, const char *dev)
{
	memset(v, 0, sizeof(*v));
	v->fd = v->vcpu = -1;
	v->sys = open(dev, O_RDWR | O_CLOEXEC);
	if (v->sys < 0)
		return -errno;
	v->fd = ioctl(v->sys, KVM_CREATE_VM, 0);
	if (v->fd < 0) {
		int r = -errno;

		close(v->sys);
		return r;
	}
	return 0;
}

static void vm_close(struct vm *v)
{
	if (v->run)
		munmap(v->run, v->mmsz);
	if (v->mem)
		munmap(v->mem, 0x10000);
	if (v->vcpu >= 0)
		close(v->vcpu);
	close(v->fd);
	close(v->sys);
	memset(v, 0, sizeof(*v));
}

static int vm_add_vcpu(struct vm *v)
{
	struct kvm_userspace_memory_region reg = { 0 };
	struct kvm_sregs sregs;
	struct kvm_regs regs = { 0 };

	v->mem = mmap(NULL, 0x10000, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (v->mem == MAP_FAILED) {
		v->mem = NULL;
		return -ENOMEM;
	}
	((uint8_t *)v->mem)[0x1000] = 0xf4;	/* hlt */
	reg.memory_size = 0x10000;
	reg.userspace_addr = (unsigned long)v->mem;
	if (ioctl(v->fd, KVM_SET_USER_MEMORY_REGION, &reg))
		return -errno;
	v->vcpu = ioctl(v->fd, KVM_CREATE_VCPU, 0);
	if (v->vcpu < 0)
		return -errno;
	v->mmsz = ioctl(v->sys, KVM_GET_VCPU_MMAP_SIZE, 0);
	v->run = mmap(NULL, v->mmsz, PROT_READ | PROT_WRITE, MAP_SHARED, v->vcpu, 0);
	if (v->run == MAP_FAILED) {
		v->run = NULL;
		return -ENOMEM;
	}
	if (ioctl(v->vcpu, KVM_GET_SREGS, &sregs))
		return -errno;
	sregs.cs.base = 0;
	sregs.cs.selector = 0;
	if (ioctl(v->vcpu, KVM_SET_SREGS, &sregs))
		return -errno;
	regs.rip = 0x1000;
	regs.rflags = 2;
	if (ioctl(v->vcpu, KVM_SET_REGS, &regs))
		return -errno;
	return 0;
}

/* Run to the HLT; 0 when the guest halted. */
static int vm_run_hlt(struct vm *v)
{
	struct kvm_regs regs;

	if (ioctl(v->vcpu, KVM_GET_REGS, &regs))
		return -errno;
	regs.rip = 0x1000;
	if (ioctl(v->vcpu, KVM_SET_REGS, &regs))
		return -errno;
	if (ioctl(v->vcpu, KVM_RUN, 0))
		return -errno;
	return v->run->exit_reason == KVM_EXIT_HLT ? 0 : 1000 + (int)v->run->exit_reason;
}

static void pin(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	if (cpu < 0) {
		for (cpu = 0; cpu < ncpu; cpu++)
			CPU_SET(cpu, &set);
	} else {
		CPU_SET(cpu, &set);
	}
	sched_setaffinity(0, sizeof(set), &set);
}

/* A VM that runs to HLT on every online CPU; returns CREATE_VM's result. */
static int vm_cycle(const char *dev, const char *when)
{
	struct vm v;
	int r, c;

	r = vm_open(&v, dev);
	if (r)
		return r;
	r = vm_add_vcpu(&v);
	CHECK(!r, "%s: %s vCPU setup %d", when, dev, r);
	for (c = 0; !r && c < ncpu; c++) {
		if (!cpu_online(c))
			continue;
		pin(c);
		r = vm_run_hlt(&v);
		CHECK(!r, "%s: %s run on cpu%d: %d", when, dev, c, r);
	}
	pin(-1);
	vm_close(&v);
	return 0;
}

static void test_own_and_found(const struct snap *found)
{
	struct snap fake;
	struct vm v;
	int c, r;

	r = vm_open(&v, "/dev/onekvm");
	CHECK(!r, "onekvm CREATE_VM %d", r);
	if (r)
		return;
	expect_held(found, "onekvm VM alive");
	if (have_kvm) {
		struct vm k;

		r = vm_open(&k, "/dev/kvm");
		CHECK(refused("/dev/kvm", r), "kvm CREATE_VM while onekvm holds SVM: %d", r);
		if (!r)
			vm_close(&k);
	}
	CHECK(!vm_add_vcpu(&v) && !vm_run_hlt(&v), "onekvm run");
	vm_close(&v);
	expect_found(found, "onekvm VM closed");

	if (!can_write_msr)
		return;
	/* A non-zero HSAVE found must come back as it was. */
	fake = *found;
	for (c = 0; c < ncpu; c++) {
		if (found->hsave[c] == ~0ULL)
			continue;
		fake.hsave[c] = FAKE_HSAVE + 0x1000 * c;
		wrmsr(c, MSR_HSAVE, fake.hsave[c]);
	}
	CHECK(!vm_cycle("/dev/onekvm", "fake HSAVE"), "onekvm VM with a fake HSAVE");
	expect_found(&fake, "after a VM, HSAVE found non-zero");
	for (c = 0; c < ncpu; c++)
		if (found->hsave[c] != ~0ULL)
			wrmsr(c, MSR_HSAVE, found->hsave[c]);
	expect_found(found, "HSAVE put back");
}

/* Someone else set SVME on the last CPU only: -EBUSY, nothing changed. */
static void test_partial_foreign(const struct snap *found)
{
	int last = ncpu - 1;
	struct snap want;
	struct vm v;
	int r;

	if (!can_write_msr || found->efer[last] == ~0ULL)
		return;
	want = *found;
	want.efer[last] |= EFER_SVME;
	wrmsr(last, MSR_EFER, want.efer[last]);
	r = vm_open(&v, "/dev/onekvm");
	CHECK(r == -EBUSY, "onekvm CREATE_VM with SVME set on cpu%d: %d", last, r);
	if (!r)
		vm_close(&v);
	expect_found(&want, "after -EBUSY rollback");
	wrmsr(last, MSR_EFER, found->efer[last]);
	expect_found(found, "foreign SVME cleared");
	CHECK(!vm_cycle("/dev/onekvm", "after foreign"), "onekvm VM after foreign SVME");
}

static void test_kvm_direction(const struct snap *found)
{
	struct vm k, v;
	int r;

	if (!have_kvm)
		return;
	r = vm_open(&k, "/dev/kvm");
	CHECK(!r, "kvm CREATE_VM %d", r);
	if (r)
		return;
	expect_held(found, "kvm VM alive");
	r = vm_open(&v, "/dev/onekvm");
	CHECK(r == -EBUSY, "onekvm CREATE_VM while kvm_amd holds SVM: %d", r);
	if (!r)
		vm_close(&v);
	CHECK(!vm_add_vcpu(&k) && !vm_run_hlt(&k), "kvm run");
	vm_close(&k);
	expect_found(found, "kvm VM closed");
	CHECK(!vm_cycle("/dev/onekvm", "onekvm after kvm"), "onekvm VM after kvm_amd let go");
	CHECK(!vm_cycle("/dev/kvm", "kvm after onekvm"), "kvm VM after onekvm let go");
	expect_found(found, "both let go");
}

struct racer {
	const char *dev;
	int cpu;
	int ok, busy, bad;
	pthread_t t;
};

static volatile int race_stop;

static void *racer(void *arg)
{
	struct racer *r = arg;
	unsigned int seed = r->cpu * 7 + r->dev[5];
	struct vm v;
	int e;

	pin(r->cpu);
	while (!race_stop) {
		/* Gaps, so that each device sometimes finds SVM free. */
		usleep(rand_r(&seed) % 3000);
		e = vm_open(&v, r->dev);
		if (refused(r->dev, e)) {
			r->busy++;
			continue;
		}
		if (e) {
			r->bad++;
			printf("racer %s: CREATE_VM %d\n", r->dev, e);
			break;
		}
		e = vm_add_vcpu(&v);
		if (!e)
			e = vm_run_hlt(&v);
		if (e) {
			r->bad++;
			printf("racer %s cpu%d: setup/run %d\n", r->dev, r->cpu, e);
		} else {
			r->ok++;
		}
		vm_close(&v);
	}
	return NULL;
}

static void test_race(const struct snap *found, int secs)
{
	struct racer rs[4];
	int n = 0, i;

	for (i = 0; i < 2; i++) {
		rs[n++] = (struct racer){ .dev = "/dev/onekvm", .cpu = i % ncpu };
		if (have_kvm)
			rs[n++] = (struct racer){ .dev = "/dev/kvm", .cpu = (i + 1) % ncpu };
	}
	race_stop = 0;
	for (i = 0; i < n; i++)
		pthread_create(&rs[i].t, NULL, racer, &rs[i]);
	sleep(secs);
	race_stop = 1;
	for (i = 0; i < n; i++) {
		pthread_join(rs[i].t, NULL);
		printf("race %-12s cpu%d: %d VMs ran, %d refused, %d errors\n",
		       rs[i].dev, rs[i].cpu, rs[i].ok, rs[i].busy, rs[i].bad);
		CHECK(!rs[i].bad, "race %s: %d errors", rs[i].dev, rs[i].bad);
	}
	expect_found(found, "after the race");
	CHECK(!vm_cycle("/dev/onekvm", "onekvm after race"), "onekvm VM after the race");
	if (have_kvm)
		CHECK(!vm_cycle("/dev/kvm", "kvm after race"), "kvm VM after the race");
	expect_found(found, "after the race, both used");
}

static void test_hotplug(const struct snap *found)
{
	int c = ncpu - 1;
	struct vm v, k;
	int r;

	if (c < 1 || access("/sys/devices/system/cpu/cpu1/online", W_OK)) {
		printf("hotplug: no cpu%d online control, not checked\n", c);
		return;
	}
	/* Offline and back while a VM lives: VMRUN must still work there. */
	r = vm_open(&v, "/dev/onekvm");
	CHECK(!r, "hotplug: CREATE_VM %d", r);
	if (r)
		return;
	CHECK(!vm_add_vcpu(&v), "hotplug: vCPU");
	pin(c);
	CHECK(!vm_run_hlt(&v), "hotplug: run on cpu%d before", c);
	pin(0);
	CHECK(!set_online(c, 0), "cpu%d offline", c);
	CHECK(!vm_run_hlt(&v), "hotplug: run with cpu%d offline", c);
	CHECK(!set_online(c, 1), "cpu%d online", c);
	pin(c);
	r = vm_run_hlt(&v);
	CHECK(!r, "hotplug: run on cpu%d after it came back: %d", c, r);
	pin(-1);
	vm_close(&v);
	expect_found(found, "hotplug: VM closed after cpu came back");

	/* Offline with a VM, VM gone, online: cpu must be free for kvm_amd. */
	r = vm_open(&v, "/dev/onekvm");
	CHECK(!r, "hotplug 2: CREATE_VM %d", r);
	if (r)
		return;
	CHECK(!vm_add_vcpu(&v), "hotplug 2: vCPU");
	pin(c);
	CHECK(!vm_run_hlt(&v), "hotplug 2: run on cpu%d", c);
	pin(0);
	CHECK(!set_online(c, 0), "cpu%d offline", c);
	vm_close(&v);
	CHECK(!set_online(c, 1), "cpu%d online", c);
	pin(-1);
	expect_found(found, "hotplug 2: cpu back after the VM went");
	CHECK(!vm_cycle("/dev/onekvm", "hotplug 2 onekvm"), "hotplug 2: onekvm VM");
	if (!have_kvm)
		return;
	r = vm_open(&k, "/dev/kvm");
	CHECK(!r, "hotplug 2: kvm CREATE_VM %d", r);
	if (r)
		return;
	r = vm_open(&v, "/dev/onekvm");
	CHECK(r == -EBUSY, "hotplug 2: onekvm CREATE_VM while kvm holds: %d", r);
	if (!r)
		vm_close(&v);
	expect_held(found, "hotplug 2: kvm still holds after onekvm's rollback");
	CHECK(!vm_add_vcpu(&k), "hotplug 2: kvm vCPU");
	pin(c);
	CHECK(!vm_run_hlt(&k), "hotplug 2: kvm run on cpu%d", c);
	pin(-1);
	vm_close(&k);
	expect_found(found, "hotplug 2: kvm closed");
}

static int sh(const char *cmd)
{
	int r = system(cmd);

	printf("$ %s -> %d\n", cmd, r);
	return r;
}

static int loaded(const char *mod)
{
	char path[80];

	snprintf(path, sizeof(path), "/sys/module/%s/initstate", mod);
	return !access(path, F_OK);
}

static void test_unload(const struct snap *found)
{
	const char *ko = getenv("VMTEST_MODULE");
	char cmd[512], dflt[256];
	struct vm v;
	int r;

	if (!ko || !*ko) {
		snprintf(dflt, sizeof(dflt), "build/%s/onekvm.ko",
			 getenv("VMTEST_KVER") ? getenv("VMTEST_KVER") : "none");
		ko = dflt;
	}
	if (access(ko, R_OK)) {
		printf("unload: %s not readable, module reload not checked\n", ko);
		return;
	}
	if (have_kvm && loaded("kvm_amd")) {
		CHECK(!sh("rmmod kvm_amd"), "rmmod kvm_amd");
		expect_found(found, "kvm_amd unloaded");
		CHECK(!vm_cycle("/dev/onekvm", "onekvm without kvm_amd"), "onekvm VM without kvm_amd");
		CHECK(!sh("modprobe kvm_amd"), "modprobe kvm_amd");
		expect_found(found, "kvm_amd loaded again");
		CHECK(!vm_cycle("/dev/kvm", "kvm after reload"), "kvm VM after kvm_amd reload");
		expect_found(found, "kvm after reload");
	}
	/* A live VM pins the module. */
	r = vm_open(&v, "/dev/onekvm");
	CHECK(!r, "unload: CREATE_VM %d", r);
	if (!r) {
		CHECK(sh("rmmod onekvm 2>/dev/null"), "rmmod onekvm succeeded with a VM open");
		vm_close(&v);
	}
	if (!loaded("onekvm"))
		goto reload;
	CHECK(!sh("rmmod onekvm"), "rmmod onekvm");
	expect_found(found, "onekvm unloaded");
	if (have_kvm)
		CHECK(!vm_cycle("/dev/kvm", "kvm without onekvm"), "kvm VM without onekvm");
reload:
	snprintf(cmd, sizeof(cmd), "insmod '%s'", ko);
	CHECK(!sh(cmd), "insmod onekvm again");
	for (r = 0; r < 50 && access("/dev/onekvm", F_OK); r++)
		usleep(100000);
	expect_found(found, "onekvm loaded again");
	CHECK(!vm_cycle("/dev/onekvm", "onekvm after reload"), "onekvm VM after reload");
	expect_found(found, "onekvm after reload");
}

int main(int argc, char **argv)
{
	int secs = argc > 1 ? atoi(argv[1]) : 6;
	struct snap found;

	setvbuf(stdout, NULL, _IONBF, 0);
	if (access("/dev/onekvm", F_OK))
		return 4;	/* skip: onekvm not loaded */
	have_kvm = !access("/dev/kvm", F_OK);
	if (access("/dev/cpu/0/msr", F_OK))
		sh("modprobe msr allow_writes=on 2>/dev/null");
	for (ncpu = 0; ncpu < MAXCPU; ncpu++)
		if (!cpu_online(ncpu) || rdmsr(ncpu, MSR_EFER) == ~0ULL)
			break;
	have_msr = ncpu > 0;
	if (!have_msr) {
		ncpu = sysconf(_SC_NPROCESSORS_ONLN);
		printf("no /dev/cpu/N/msr (msr module): EFER/HSAVE not checked\n");
	}
	take(&found);
	/* Writing back the value read is a no-op probe of write access. */
	can_write_msr = have_msr && !wrmsr(0, MSR_HSAVE, found.hsave[0]);
	printf("%d CPUs, msr %s, kvm %s\n", ncpu,
	       have_msr ? (can_write_msr ? "rw" : "ro") : "none", have_kvm ? "yes" : "no");
	if (have_msr)
		printf("found: cpu0 EFER %#llx HSAVE %#llx\n",
		       (unsigned long long)found.efer[0], (unsigned long long)found.hsave[0]);
	if (have_msr)
		CHECK(!(found.efer[0] & EFER_SVME), "SVME set at start: someone holds SVM");

	test_own_and_found(&found);
	test_partial_foreign(&found);
	test_kvm_direction(&found);
	test_race(&found, secs);
	test_hotplug(&found);
	test_unload(&found);

	printf("okvm_hw: %d checks, %d failed\n", checks, failures);
	return failures ? 1 : 0;
}
