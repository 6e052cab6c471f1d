// SPDX-License-Identifier: GPL-2.0-only
/*
 * svm-dev smoke test: tiny guests in real, protected and long mode driven
 * through the KVM API on /dev/onekvm or /dev/kvm (argv[1]). Developer
 * iteration tool of the svm engineer; the systematic suite lives beside it.
 *
 * Build: cc -O2 -I build/<KVER>/include/generated/uapi -o okvm_smoke okvm_smoke.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <onekvm/kvm.h>
#include <ucontext.h>

static int failures;
#define CHECK(c, ...) do { if (!(c)) { failures++; printf("FAIL %s:%d: ", __func__, __LINE__); printf(__VA_ARGS__); printf("\n"); } } while (0)

#define GUEST(name, mode, body) \
	asm(".pushsection .rodata\n.global " #name "_start, " #name "_end\n" \
	    #name "_start:\n" mode "\n" body "\n.code64\n" #name "_end:\n.popsection"); \
	extern const unsigned char name##_start[], name##_end[]

/* Real mode at 0x1000: IO in/out, string IO, CPUID, MSR, MMIO, HLT. */
GUEST(rm, ".code16",
	"mov $0x42, %al\n out %al, $0x10\n"
	"in $0x11, %al\n out %al, $0x12\n"
	"mov $0x300, %si\n mov $5, %cx\n mov $0x13, %dx\n cld\n rep outsb\n"
	"mov $0x400, %di\n mov $3, %cx\n mov $0x14, %dx\n rep insb\n"
	"mov (0x400), %eax\n out %eax, $0x15\n"
	"xor %eax, %eax\n cpuid\n mov %ebx, %eax\n out %eax, $0x16\n"
	"mov $0xc0000080, %ecx\n rdmsr\n out %eax, $0x17\n"
	"mov $0x277, %ecx\n rdmsr\n out %eax, $0x18\n"
	"mov $0x1000, %ax\n mov %ax, %ds\n movw $0x1234, (0x10)\n"
	"mov (0x20), %bx\n xor %ax, %ax\n mov %ax, %ds\n mov %bx, %ax\n out %ax, $0x19\n"
	"hlt\n"
	"mov $0x77, %al\n out %al, $0x1a\n"
	"mov $0x12345678, %ecx\n rdmsr\n"
	"out %al, $0x1b\n");

/* Long mode at 0x1000 with identity 1G pages: IO, MMIO above RAM, HLT. */
GUEST(lm, ".code64",
	"mov $0x1122334455667788, %rax\n out %eax, $0x20\n"
	"mov $0xfee00030, %rbx\n mov (%rbx), %eax\n out %eax, $0x21\n"
	"movq $0xabcdef, 8(%rbx)\n"
	"mov $100000, %ecx\n 1: dec %ecx\n jnz 1b\n"
	"xor %eax, %eax\n cpuid\n out %eax, $0x22\n"
	"hlt\n");

/* Real mode: interrupts. IVT vector 0x20 -> handler at 0x800. */
GUEST(irq, ".code16",
	"sti\n 1: hlt\n out %al, $0x31\n jmp 1b\n");
GUEST(irqh, ".code16",
	"mov $0x20, %al\n out %al, $0x30\n iret\n");

/* Real mode: window request with interrupts masked first. */
GUEST(win, ".code16",
	"cli\n out %al, $0x40\n sti\n nop\n nop\n out %al, $0x41\n hlt\n");

/* Real mode: triple fault (IDT limit 0, then int3). */
GUEST(tf, ".code16",
	"lidt (0x600)\n int3\n");

/* Hostile: SVM instructions and XSETBV (CR4.OSXSAVE clear) raise #UD. */
GUEST(hvmrun, ".code16", "vmrun\n out %al, $0x61\n");
GUEST(hvmmcall, ".code16", "vmmcall\n out %al, $0x61\n");
GUEST(hclgi, ".code16", "clgi\n out %al, $0x61\n");
GUEST(hxsetbv, ".code16", "xor %ecx, %ecx\n xor %edx, %edx\n mov $1, %eax\n xsetbv\n out %al, $0x61\n");

/* A guest that never exits by itself. */
GUEST(spin, ".code16", "1: jmp 1b\n");

/* Benchmarks: cpuid loop (counter at the end), out loop, mmio loop. */
GUEST(bcpu, ".code16",
	"mov $20000, %ebp\n 1: xor %eax, %eax\n cpuid\n dec %ebp\n jnz 1b\n out %al, $0x50\n hlt\n");
GUEST(bio, ".code16",
	"1: out %al, $0x51\n jmp 1b\n");
GUEST(bmmio, ".code16",
	"mov $0x1000, %ax\n mov %ax, %ds\n 1: movb $1, (0)\n jmp 1b\n");

struct vm {
	int sys, fd, vcpu;
	struct kvm_run *run;
	uint8_t *mem;
	size_t memsz;
	int mmsz;
};

static long xioctl(int fd, unsigned long req, void *arg)
{
	long r = ioctl(fd, req, arg);

	if (r < 0)
		r = -errno;
	return r;
}

static const char *dev = "/dev/onekvm";

static void vm_create(struct vm *v, size_t memsz)
{
	struct kvm_userspace_memory_region reg = { 0 };
	struct kvm_cpuid2 *cpuid;
	int mmsz;

	v->sys = open(dev, O_RDWR);
	if (v->sys < 0) { perror(dev); exit(2); }
	v->fd = ioctl(v->sys, KVM_CREATE_VM, 0);
	if (v->fd < 0) { perror("KVM_CREATE_VM"); exit(2); }
	v->memsz = memsz;
	v->mem = mmap(NULL, memsz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	reg.slot = 0;
	reg.guest_phys_addr = 0;
	reg.memory_size = memsz;
	reg.userspace_addr = (unsigned long)v->mem;
	if (xioctl(v->fd, KVM_SET_USER_MEMORY_REGION, &reg)) { perror("SET_USER_MEMORY_REGION"); exit(2); }
	v->vcpu = ioctl(v->fd, KVM_CREATE_VCPU, 0);
	if (v->vcpu < 0) { perror("KVM_CREATE_VCPU"); exit(2); }
	mmsz = ioctl(v->sys, KVM_GET_VCPU_MMAP_SIZE, 0);
	v->mmsz = mmsz;
	v->run = mmap(NULL, mmsz, PROT_READ | PROT_WRITE, MAP_SHARED, v->vcpu, 0);
	if (v->run == MAP_FAILED) { perror("mmap run"); exit(2); }
	cpuid = calloc(1, sizeof(*cpuid) + 64 * sizeof(struct kvm_cpuid_entry2));
	cpuid->nent = 64;
	if (xioctl(v->sys, KVM_GET_SUPPORTED_CPUID, cpuid)) { perror("GET_SUPPORTED_CPUID"); exit(2); }
	if (xioctl(v->vcpu, KVM_SET_CPUID2, cpuid)) { perror("SET_CPUID2"); exit(2); }
	free(cpuid);
}

static void vm_destroy(struct vm *v)
{
	munmap(v->run, v->mmsz);
	close(v->vcpu);
	close(v->fd);
	munmap(v->mem, v->memsz);
	close(v->sys);
}

static void load(struct vm *v, uint64_t gpa, const unsigned char *s, const unsigned char *e)
{
	memcpy(v->mem + gpa, s, e - s);
}

static void real_mode(struct vm *v, uint64_t rip)
{
	struct kvm_sregs sregs;
	struct kvm_regs regs = { 0 };

	xioctl(v->vcpu, KVM_GET_SREGS, &sregs);
	sregs.cs.base = 0;
	sregs.cs.selector = 0;
	xioctl(v->vcpu, KVM_SET_SREGS, &sregs);
	regs.rip = rip;
	regs.rflags = 2;
	regs.rsp = 0xf000;
	xioctl(v->vcpu, KVM_SET_REGS, &regs);
}

static int run(struct vm *v)
{
	long r = xioctl(v->vcpu, KVM_RUN, 0);

	if (r)
		return (int)r;
	return v->run->exit_reason;
}

static uint8_t *iodata(struct vm *v)
{
	return (uint8_t *)v->run + v->run->io.data_offset;
}

static int expect_io(struct vm *v, int dir, int port, int size, int count)
{
	int r = run(v);

	if (r != KVM_EXIT_IO) {
		CHECK(0, "port %#x: exit %d (expected IO)", port, r);
		if (r == KVM_EXIT_INTERNAL_ERROR)
			printf("  suberror %u ndata %u data0 %#llx\n", v->run->internal.suberror,
			       v->run->internal.ndata, (unsigned long long)v->run->internal.data[0]);
		if (r == KVM_EXIT_FAIL_ENTRY)
			printf("  hw reason %#llx\n", (unsigned long long)v->run->fail_entry.hardware_entry_failure_reason);
		return 0;
	}
	CHECK(v->run->io.direction == dir && v->run->io.port == port &&
	      v->run->io.size == size && v->run->io.count == count,
	      "io dir %d port %#x size %d count %u, expected %d %#x %d %d",
	      v->run->io.direction, v->run->io.port, v->run->io.size, v->run->io.count,
	      dir, port, size, count);
	return 1;
}

/*
 * String IO may be split over several exits (onekvm moves up to a page per
 * exit, kvm_amd without decode assists one element): gather or feed @total
 * elements of @size bytes.
 */
static int expect_str_io(struct vm *v, int dir, int port, int size, int total, uint8_t *buf)
{
	int done = 0;

	while (done < total) {
		int r = run(v), n;

		if (r != KVM_EXIT_IO || v->run->io.direction != dir || v->run->io.port != port ||
		    v->run->io.size != size) {
			CHECK(0, "string io port %#x: exit %d dir %d port %#x size %d", port, r,
			      v->run->io.direction, v->run->io.port, v->run->io.size);
			return 0;
		}
		n = v->run->io.count;
		if (done + n > total) {
			CHECK(0, "string io port %#x: %d elements, expected %d", port, done + n, total);
			return 0;
		}
		if (dir == KVM_EXIT_IO_OUT)
			memcpy(buf + done * size, iodata(v), n * size);
		else
			memcpy(iodata(v), buf + done * size, n * size);
		done += n;
	}
	return 1;
}

static void test_real_mode(void)
{
	struct vm v;
	uint32_t u32;
	struct kvm_regs regs;
	uint8_t sbuf[8];
	int r;

	vm_create(&v, 0x10000);
	load(&v, 0x1000, rm_start, rm_end);
	memcpy(v.mem + 0x300, "hello", 5);
	memcpy(v.mem + 0x900, "\xe6\x1c\xf4", 3);
	*(uint32_t *)(v.mem + 13 * 4) = 0x900;
	real_mode(&v, 0x1000);
	if (expect_io(&v, KVM_EXIT_IO_OUT, 0x10, 1, 1))
		CHECK(iodata(&v)[0] == 0x42, "out data %#x", iodata(&v)[0]);
	if (expect_io(&v, KVM_EXIT_IO_IN, 0x11, 1, 1))
		iodata(&v)[0] = 0x99;
	if (expect_io(&v, KVM_EXIT_IO_OUT, 0x12, 1, 1))
		CHECK(iodata(&v)[0] == 0x99, "in->out data %#x", iodata(&v)[0]);
	if (expect_str_io(&v, KVM_EXIT_IO_OUT, 0x13, 1, 5, sbuf))
		CHECK(!memcmp(sbuf, "hello", 5), "outsb data %.5s", (char *)sbuf);
	expect_str_io(&v, KVM_EXIT_IO_IN, 0x14, 1, 3, (uint8_t *)"abc");
	if (expect_io(&v, KVM_EXIT_IO_OUT, 0x15, 4, 1)) {
		memcpy(&u32, iodata(&v), 4);
		CHECK((u32 & 0xffffff) == ('a' | 'b' << 8 | 'c' << 16), "insb result %#x", u32);
	}
	if (expect_io(&v, KVM_EXIT_IO_OUT, 0x16, 4, 1)) {
		memcpy(&u32, iodata(&v), 4);
		CHECK(u32 == 0x68747541 || u32 == 0x756e6547, "cpuid vendor ebx %#x", u32);
	}
	if (expect_io(&v, KVM_EXIT_IO_OUT, 0x17, 4, 1)) {
		memcpy(&u32, iodata(&v), 4);
		CHECK(u32 == 0, "EFER %#x (SVME must be hidden)", u32);
	}
	if (expect_io(&v, KVM_EXIT_IO_OUT, 0x18, 4, 1)) {
		memcpy(&u32, iodata(&v), 4);
		CHECK(u32 == 0x00070406, "PAT low %#x", u32);
	}
	r = run(&v);
	CHECK(r == KVM_EXIT_MMIO, "exit %d, expected MMIO write", r);
	if (r == KVM_EXIT_MMIO)
		CHECK(v.run->mmio.is_write && v.run->mmio.phys_addr == 0x10010 &&
		      v.run->mmio.len == 2 && v.run->mmio.data[0] == 0x34 && v.run->mmio.data[1] == 0x12,
		      "mmio w %d %#llx len %u data %02x%02x", v.run->mmio.is_write,
		      (unsigned long long)v.run->mmio.phys_addr, v.run->mmio.len,
		      v.run->mmio.data[1], v.run->mmio.data[0]);
	r = run(&v);
	CHECK(r == KVM_EXIT_MMIO, "exit %d, expected MMIO read", r);
	if (r == KVM_EXIT_MMIO) {
		CHECK(!v.run->mmio.is_write && v.run->mmio.phys_addr == 0x10020 && v.run->mmio.len == 2,
		      "mmio r %d %#llx len %u", v.run->mmio.is_write,
		      (unsigned long long)v.run->mmio.phys_addr, v.run->mmio.len);
		v.run->mmio.data[0] = 0xcd;
		v.run->mmio.data[1] = 0xab;
	}
	if (expect_io(&v, KVM_EXIT_IO_OUT, 0x19, 2, 1))
		CHECK(iodata(&v)[0] == 0xcd && iodata(&v)[1] == 0xab, "mmio read data");
	r = run(&v);
	CHECK(r == KVM_EXIT_HLT, "exit %d, expected HLT", r);
	if (expect_io(&v, KVM_EXIT_IO_OUT, 0x1a, 1, 1))
		CHECK(iodata(&v)[0] == 0x77, "after hlt");
	/* rdmsr of an unknown MSR: #GP, vector 13 handler at 0x900 */
	expect_io(&v, KVM_EXIT_IO_OUT, 0x1c, 1, 1);
	xioctl(v.vcpu, KVM_GET_REGS, &regs);
	CHECK(regs.rip == 0x900, "#GP handler rip %#llx", (unsigned long long)regs.rip);
	vm_destroy(&v);
}

static void test_long_mode(void)
{
	struct kvm_sregs sregs;
	struct kvm_regs regs = { 0 };
	struct vm v;
	uint64_t *pml4, *pdpt;
	uint32_t u32;
	uint64_t u64;
	int r;

	vm_create(&v, 0x200000);
	load(&v, 0x1000, lm_start, lm_end);
	pml4 = (uint64_t *)(v.mem + 0x10000);
	pdpt = (uint64_t *)(v.mem + 0x11000);
	pml4[0] = 0x11000 | 3;
	for (int i = 0; i < 4; i++)
		pdpt[i] = ((uint64_t)i << 30) | 0x83;
	xioctl(v.vcpu, KVM_GET_SREGS, &sregs);
	sregs.cr3 = 0x10000;
	sregs.cr4 = 0x20;	/* PAE */
	sregs.cr0 = 0x80000011;	/* PG | ET | PE */
	sregs.efer = 0x500;	/* LME | LMA */
	sregs.cs = (struct kvm_segment){ .base = 0, .limit = 0xffffffff, .selector = 8,
		.type = 11, .present = 1, .dpl = 0, .db = 0, .s = 1, .l = 1, .g = 1 };
	sregs.ds = (struct kvm_segment){ .base = 0, .limit = 0xffffffff, .selector = 16,
		.type = 3, .present = 1, .dpl = 0, .db = 1, .s = 1, .l = 0, .g = 1 };
	sregs.es = sregs.fs = sregs.gs = sregs.ss = sregs.ds;
	r = xioctl(v.vcpu, KVM_SET_SREGS, &sregs);
	CHECK(r == 0, "SET_SREGS %d", r);
	regs.rip = 0x1000;
	regs.rflags = 2;
	regs.rsp = 0x8000;
	xioctl(v.vcpu, KVM_SET_REGS, &regs);
	if (expect_io(&v, KVM_EXIT_IO_OUT, 0x20, 4, 1)) {
		memcpy(&u32, iodata(&v), 4);
		CHECK(u32 == 0x55667788, "lm out %#x", u32);
	}
	r = run(&v);
	CHECK(r == KVM_EXIT_MMIO && !v.run->mmio.is_write && v.run->mmio.phys_addr == 0xfee00030 &&
	      v.run->mmio.len == 4, "lm mmio read: exit %d", r);
	if (r == KVM_EXIT_MMIO) {
		u32 = 0x50014;
		memcpy(v.run->mmio.data, &u32, 4);
	}
	if (expect_io(&v, KVM_EXIT_IO_OUT, 0x21, 4, 1)) {
		memcpy(&u32, iodata(&v), 4);
		CHECK(u32 == 0x50014, "lm mmio value %#x", u32);
	}
	r = run(&v);
	CHECK(r == KVM_EXIT_MMIO && v.run->mmio.is_write && v.run->mmio.phys_addr == 0xfee00038 &&
	      v.run->mmio.len == 8, "lm mmio write: exit %d len %u", r, v.run->mmio.len);
	if (r == KVM_EXIT_MMIO) {
		memcpy(&u64, v.run->mmio.data, 8);
		CHECK(u64 == 0xabcdef, "lm mmio write data %#llx", (unsigned long long)u64);
	}
	if (expect_io(&v, KVM_EXIT_IO_OUT, 0x22, 4, 1)) {
		memcpy(&u32, iodata(&v), 4);
		CHECK(u32 >= 7, "cpuid max leaf %#x", u32);
	}
	r = run(&v);
	CHECK(r == KVM_EXIT_HLT, "lm exit %d, expected HLT", r);
	vm_destroy(&v);
}

static void test_irq(void)
{
	struct kvm_interrupt irq = { .irq = 0x20 };
	struct vm v;
	int r, i;

	vm_create(&v, 0x10000);
	load(&v, 0x1000, irq_start, irq_end);
	load(&v, 0x800, irqh_start, irqh_end);
	*(uint16_t *)(v.mem + 0x20 * 4) = 0x800;
	*(uint16_t *)(v.mem + 0x20 * 4 + 2) = 0;
	real_mode(&v, 0x1000);
	for (i = 0; i < 3; i++) {
		r = run(&v);
		CHECK(r == KVM_EXIT_HLT, "irq: exit %d, expected HLT", r);
		CHECK(v.run->if_flag && v.run->ready_for_interrupt_injection,
		      "if_flag %d ready %d", v.run->if_flag, v.run->ready_for_interrupt_injection);
		r = xioctl(v.vcpu, KVM_INTERRUPT, &irq);
		CHECK(r == 0, "KVM_INTERRUPT %d", r);
		if (expect_io(&v, KVM_EXIT_IO_OUT, 0x30, 1, 1))
			CHECK(iodata(&v)[0] == 0x20, "handler");
		expect_io(&v, KVM_EXIT_IO_OUT, 0x31, 1, 1);
	}
	vm_destroy(&v);

	vm_create(&v, 0x10000);
	load(&v, 0x1000, win_start, win_end);
	real_mode(&v, 0x1000);
	expect_io(&v, KVM_EXIT_IO_OUT, 0x40, 1, 1);
	CHECK(!v.run->if_flag && !v.run->ready_for_interrupt_injection, "cli: if %d ready %d",
	      v.run->if_flag, v.run->ready_for_interrupt_injection);
	v.run->request_interrupt_window = 1;
	r = run(&v);
	CHECK(r == KVM_EXIT_IRQ_WINDOW_OPEN, "window: exit %d", r);

	CHECK(v.run->if_flag && v.run->ready_for_interrupt_injection, "window: if %d ready %d",
	      v.run->if_flag, v.run->ready_for_interrupt_injection);
	v.run->request_interrupt_window = 0;
	vm_destroy(&v);
}

static void test_triple_fault(void)
{
	struct vm v;
	int r;

	vm_create(&v, 0x10000);
	load(&v, 0x1000, tf_start, tf_end);
	memset(v.mem + 0x600, 0, 6);
	real_mode(&v, 0x1000);
	r = run(&v);
	CHECK(r == KVM_EXIT_SHUTDOWN, "triple fault: exit %d", r);
	vm_destroy(&v);
}

static void test_hostile_one(const unsigned char *s, const unsigned char *e, int vec, const char *what)
{
	struct vm v;

	vm_create(&v, 0x10000);
	load(&v, 0x1000, s, e);
	memcpy(v.mem + 0x900, "\xe6\x1c\xf4", 3);
	memcpy(v.mem + 0x910, "\xe6\x1d\xf4", 3);
	/* The expected vector lands at 0x900, any other at 0x910. */
	for (int i = 0; i < 32; i++)
		*(uint32_t *)(v.mem + i * 4) = i == vec ? 0x900 : 0x910;
	real_mode(&v, 0x1000);
	if (!expect_io(&v, KVM_EXIT_IO_OUT, 0x1c, 1, 1))
		printf("  (%s did not raise vector %d)\n", what, vec);
	vm_destroy(&v);
}

static void test_hostile(void)
{
	test_hostile_one(hvmrun_start, hvmrun_end, 6, "vmrun");
	{
		/* VMMCALL is KVM's hypercall: unknown ones return -KVM_ENOSYS. */
		struct vm v;
		struct kvm_regs regs;

		vm_create(&v, 0x10000);
		load(&v, 0x1000, hvmmcall_start, hvmmcall_end);
		real_mode(&v, 0x1000);
		expect_io(&v, KVM_EXIT_IO_OUT, 0x61, 1, 1);
		xioctl(v.vcpu, KVM_GET_REGS, &regs);
		CHECK(regs.rax == 0xfffffc18, "vmmcall rax %#llx", (unsigned long long)regs.rax);
		vm_destroy(&v);
	}
	test_hostile_one(hclgi_start, hclgi_end, 6, "clgi");
	test_hostile_one(hxsetbv_start, hxsetbv_end, 6, "xsetbv without CR4.OSXSAVE");
}

static void on_alarm(int sig)
{
	(void)sig;
}

static double now(void);

static void test_signal(void)
{
	struct sigaction sa = { .sa_handler = on_alarm };
	struct vm v;
	double t;
	int r;

	sigaction(SIGALRM, &sa, NULL);
	vm_create(&v, 0x10000);
	load(&v, 0x1000, spin_start, spin_end);
	real_mode(&v, 0x1000);
	alarm(1);
	t = now();
	r = run(&v);
	t = now() - t;
	CHECK(r == -EINTR && v.run->exit_reason == KVM_EXIT_INTR, "spin: run %d exit %u", r, v.run->exit_reason);
	CHECK(t > 0.5 && t < 5, "spin: %.2f s", t);
	if (getenv("SMOKE_IMMEDIATE_EXIT")) {
		v.run->immediate_exit = 1;
		r = run(&v);
		CHECK(r == -EINTR, "immediate_exit: run %d", r);
		v.run->immediate_exit = 0;
	}
	vm_destroy(&v);
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void bench(void)
{
	struct vm v;
	double t;
	int i, r, n = 20000;

	vm_create(&v, 0x10000);
	load(&v, 0x1000, bcpu_start, bcpu_end);
	real_mode(&v, 0x1000);
	t = now();
	r = run(&v);
	t = now() - t;
	CHECK(r == KVM_EXIT_IO, "bench cpuid exit %d", r);
	printf("BENCH cpuid (in-kernel exit): %.1f us/exit, %.0f exits/s\n", t / 20000 * 1e6, 20000 / t);
	vm_destroy(&v);

	vm_create(&v, 0x10000);
	load(&v, 0x1000, bio_start, bio_end);
	real_mode(&v, 0x1000);
	t = now();
	for (i = 0; i < n; i++)
		if ((r = run(&v)) != KVM_EXIT_IO)
			break;
	t = now() - t;
	CHECK(i == n, "bench io exit %d", r);
	printf("BENCH io (userspace exit): %.1f us/exit, %.0f exits/s\n", t / n * 1e6, n / t);
	vm_destroy(&v);

	vm_create(&v, 0x10000);
	load(&v, 0x1000, bmmio_start, bmmio_end);
	real_mode(&v, 0x1000);
	t = now();
	for (i = 0; i < n; i++)
		if ((r = run(&v)) != KVM_EXIT_MMIO)
			break;
	t = now() - t;
	CHECK(i == n, "bench mmio exit %d", r);
	printf("BENCH mmio (userspace exit): %.1f us/exit, %.0f exits/s\n", t / n * 1e6, n / t);
	vm_destroy(&v);
}

static void on_segv(int sig, siginfo_t *si, void *uc)
{
	ucontext_t *u = uc;
	char buf[160];
	int n = snprintf(buf, sizeof(buf), "SIGSEGV addr %p rip %llx rsp %llx fsbase? \n", si->si_addr,
			 (unsigned long long)u->uc_mcontext.gregs[REG_RIP],
			 (unsigned long long)u->uc_mcontext.gregs[REG_RSP]);
	write(2, buf, n);
	_exit(3);
}

static int test_dev(int bench_too)
{
	failures = 0;
	test_real_mode();
	printf("real mode: %d failures so far\n", failures);
	test_long_mode();
	printf("long mode: %d failures so far\n", failures);
	test_irq();
	printf("irq: %d failures so far\n", failures);
	test_triple_fault();
	printf("triple fault: %d failures so far\n", failures);
	test_signal();
	printf("signal: %d failures so far\n", failures);
	test_hostile();
	printf("hostile: %d failures so far\n", failures);
	if (bench_too)
		bench();
	printf("%s: %d passed, %d failed\n", dev, failures ? 0 : 1, failures ? 1 : 0);
	return failures;
}

int main(int argc, char **argv)
{
	struct sigaction sa = { .sa_sigaction = on_segv, .sa_flags = SA_SIGINFO };
	char *devs, *d;
	int bad = 0, n = 0;

	setvbuf(stdout, NULL, _IONBF, 0);
	sigaction(SIGSEGV, &sa, NULL);
	if (argc > 1)
		dev = argv[1];
	if (argc > 3 && !strcmp(argv[2], "spin")) {
		/* Lifecycle: spin forever in a guest with N MiB, to be killed. */
		struct vm v;

		vm_create(&v, (size_t)atoi(argv[3]) << 20);
		memset(v.mem, 1, v.memsz);
		load(&v, 0x1000, spin_start, spin_end);
		real_mode(&v, 0x1000);
		for (;;)
			run(&v);
	}
	if (argc > 1)
		return test_dev(argc > 2) ? 1 : 0;
	/* No argument: every device of the rig (ONEKVM_TEST_DEVS). */
	devs = getenv("ONEKVM_TEST_DEVS");
	if (!devs || !*devs)
		return 4;
	devs = strdup(devs);
	for (d = strtok(devs, ","); d; d = strtok(NULL, ",")) {
		dev = d;
		bad += test_dev(0) != 0;
		n++;
	}
	return bad ? 1 : (n ? 0 : 4);
}
