# SPDX-License-Identifier: GPL-2.0-only
"""Host tests of arch/x86/kvm/emulate.c and walk.c.

The two files are compiled with gcc (-Wall -Wextra -Werror) against the
userspace shim headers in shim/ together with harness.c into a shared
object, driven here through ctypes.  Instruction bytes come from the GNU
assembler and expected lengths from `as` and `objdump`, never typed by hand.

Run: python3 -m pytest -q tools/testing/emulate
"""
import ctypes
import os
import random
import re
import shutil
import struct
import subprocess

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
KVM = os.path.join(ROOT, "arch", "x86", "kvm")

pytestmark = pytest.mark.skipif(
    not all(shutil.which(t) for t in ("gcc", "as", "objdump")),
    reason="needs gcc and binutils")

# enum okvm_cpu_mode
REAL, VM86, PROT16, PROT32, COMPAT16, COMPAT32, LONG64 = range(7)
# enum okvm_emul_result
DONE, MMIO, EXCEPTION, UNHANDLED = range(4)
# enum okvm_emul_fail
F_NONE, F_FETCH, F_DECODE, F_UNSUPPORTED, F_MEM, F_STATE = range(6)
# enum okvm_walk_status
W_OK, W_PF, W_GP = range(3)
ENOENT, E2BIG, ENODATA, EINVAL = 2, 7, 61, 22

PF_P, PF_W, PF_U, PF_RSVD, PF_I = 1, 2, 4, 8, 16
ACC_WRITE, ACC_USER, ACC_FETCH = PF_W, PF_U, PF_I
ACC_AC, ACC_SET_AD, ACC_NOCHECK = 1 << 16, 1 << 17, 1 << 18

CR0_PE, CR0_WP, CR0_PG = 1, 1 << 16, 1 << 31
CR4_PSE, CR4_PAE, CR4_LA57, CR4_SMEP, CR4_SMAP = (
    1 << 4, 1 << 5, 1 << 12, 1 << 20, 1 << 21)
EFER_LME, EFER_LMA, EFER_NXE = 1 << 8, 1 << 10, 1 << 11
FL_CF, FL_PF, FL_AF, FL_ZF, FL_SF, FL_DF, FL_OF = (
    1, 4, 16, 64, 128, 1 << 10, 1 << 11)
FL_ARITH = 0x8d5

P, W, U, A, D, PS = 1, 2, 4, 32, 64, 128
NX = 1 << 63

RAX, RCX, RDX, RBX, RSP, RBP, RSI, RDI = range(8)
ES, CS, SS, DS, FS, GS = range(6)

RAM_SIZE = 8 << 20
MMIO_BASE = 0xfee00000      # beyond RAM: not RAM

DECODE_FIELDS = ("len map vex_map opcode op_bytes ad_bytes rex rep seg flags "
                 "modrm mod reg rm sib disp_bytes imm_bytes disp imm op "
                 "mem_bytes alu").split()
OPS = ("NONE STORE STORE_IMM LOAD LOAD_MOFFS STORE_MOFFS MOVZX MOVSX STOS "
       "MOVS ALU_MR ALU_RM ALU_MI TEST_MR TEST_MI").split()

U64 = ctypes.c_uint64


# --------------------------------------------------------------------------
# build and load the harness

@pytest.fixture(scope="session")
def lib(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("emul") / "harness.so")
    cmd = ["gcc", "-O1", "-shared", "-fPIC",
           "-std=gnu11", "-Wall", "-Wextra", "-Werror",
           "-I", os.path.join(HERE, "shim"), "-I", KVM, "-o", out,
           os.path.join(HERE, "harness.c"), os.path.join(HERE, "native_alu.S"),
           os.path.join(KVM, "emulate.c"), os.path.join(KVM, "walk.c")]
    subprocess.run(cmd, check=True)
    so = ctypes.CDLL(out)
    so.h_native_alu.restype = U64
    so.h_native_alu.argtypes = [ctypes.c_int, U64, U64, ctypes.c_int,
                                ctypes.POINTER(U64)]
    so.h_start.argtypes = [U64]
    so.h_walk.argtypes = [U64, ctypes.c_uint32, ctypes.POINTER(U64)]
    so.h_read_gva.argtypes = [U64, ctypes.c_char_p, ctypes.c_uint,
                              ctypes.c_uint32, ctypes.POINTER(U64)]
    so.h_write_gva.argtypes = so.h_read_gva.argtypes
    so.h_mem.argtypes = [ctypes.c_void_p, U64]
    so.h_add_mmio.argtypes = [U64, U64]
    so.h_cpu_mode.argtypes = [U64, U64, U64, ctypes.c_int, ctypes.c_int]
    return so


def decode(lib, code, mode, avail=None):
    out = (ctypes.c_int64 * len(DECODE_FIELDS))()
    n = len(code) if avail is None else avail
    r = lib.h_decode(bytes(code), n, mode, out)
    return r, dict(zip(DECODE_FIELDS, out))


# --------------------------------------------------------------------------
# the assembler as the oracle

MODE_AS = {  # mode -> (as flags, directive, objdump machine option)
    LONG64: (["--64"], ".code64", []),
    PROT32: (["--32"], ".code32", []),
    PROT16: (["--32"], ".code16", ["-m", "i8086"]),
}

_asm_cache = {}


def assemble(mode, texts, tmpdir):
    """Assemble each text (one instruction) with a label before it.

    Returns {text: (bytes, [objdump instruction lengths in that range])}.
    """
    flags, directive, odopt = MODE_AS[mode]
    src = [directive]
    for i, t in enumerate(texts):
        src.append("i%d: %s" % (i, t))
    src.append("i%d: nop" % len(texts))
    base = os.path.join(str(tmpdir), "m%d" % mode)
    with open(base + ".s", "w") as f:
        f.write("\n".join(src) + "\n")
    subprocess.run(["as"] + flags + ["-o", base + ".o", base + ".s"],
                   check=True)
    subprocess.run(["objcopy", "-O", "binary", "-j", ".text",
                    base + ".o", base + ".bin"], check=True)
    with open(base + ".bin", "rb") as f:
        text = f.read()
    dis = subprocess.run(["objdump", "-d", "--insn-width=16"] + odopt +
                         [base + ".o"], check=True, capture_output=True,
                         text=True).stdout
    labels, insns = {}, []
    for line in dis.splitlines():
        m = re.match(r"^([0-9a-f]+) <i(\d+)>:", line)
        if m:
            labels[int(m.group(2))] = int(m.group(1), 16)
            continue
        m = re.match(r"^\s*([0-9a-f]+):\t((?:[0-9a-f]{2} )+)\s*\t?(.*)$",
                     line)
        if m:
            insns.append((int(m.group(1), 16),
                          len(m.group(2).split()), m.group(3).strip()))
    res = {}
    for i, t in enumerate(texts):
        lo, hi = labels[i], labels[i + 1]
        lens = [n for off, n, _ in insns if lo <= off < hi]
        res[t] = (text[lo:hi], lens)
    return res


@pytest.fixture(scope="session")
def asm(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("asm")
    pending = {m: set() for m in MODE_AS}
    for m, t in REGISTERED:
        pending[m].add(t)

    def get(mode, text):
        key = (mode, text)
        if key not in _asm_cache:
            todo = sorted(pending[mode] | {text})
            for t, v in assemble(mode, todo, tmp).items():
                _asm_cache[(mode, t)] = v
            pending[mode] = set()
        return _asm_cache[key][0]
    get.full = lambda mode, text: (get(mode, text), _asm_cache[(mode, text)])
    return get


REGISTERED = []


def reg(mode, *texts):
    for t in texts:
        REGISTERED.append((mode, t))
    return list(texts)


# --------------------------------------------------------------------------
# instruction length table, checked against as + objdump

LEN64 = reg(LONG64, *"""
nop
hlt
cpuid
rdmsr
wrmsr
vmmcall
vmrun
vmload
vmsave
stgi
clgi
skinit
invlpga
invd
wbinvd
rdtsc
rdtscp
rdpmc
int3
int $0x80
iretq
ret
ret $8
lret
leave
enter $16, $0
enter $0x1234, $3
pushq $1
pushq $0x12345678
pushw $0x1234
push %rax
push %r12
pop %r15
pushfq
popfq
cli
sti
cld
std
cmc
lahf
sahf
xchg %eax,%ebx
xchg %r8,%rax
cbw
cwde
cdqe
cqo
syscall
sysret
swapgs
rdfsbase %rax
wrgsbase %rbx
ud2
ud1 %eax,%ebx
pause
lfence
mfence
sfence
clflush (%rax)
clflushopt (%rax)
clwb 8(%rax)
prefetcht0 (%rax)
prefetchw (%rax)
monitor
mwait
monitorx
mwaitx
clzero
rdrand %eax
rdseed %rax
rdpid %rax
xgetbv
xsetbv
xsave (%rax)
xrstor (%rax)
xsaveopt (%rax)
fxsave (%rax)
fxrstor64 (%rax)
ldmxcsr (%rax)
stmxcsr 4(%rsp)
lgdt (%rax)
lidt 8(%rax)
sgdt (%rax)
sidt (%rax)
lldt %ax
ltr %ax
sldt %eax
str %eax
lmsw %ax
smsw %eax
invlpg (%rax)
invpcid (%rax),%rax
mov %cr0,%rax
mov %rax,%cr3
mov %cr8,%rax
mov %r9,%cr4
mov %dr7,%rax
mov %rax,%dr0
lar %ax,%eax
lsl %eax,%eax
verr %ax
verw %ax
in $0x60,%al
in %dx,%eax
out %al,$0x80
out %ax,%dx
insb
outsw
rep insb
rep outsl
push %fs
pop %gs
mov %ds,%eax
mov %eax,%es
mov %ss,(%rax)
endbr64
wbnoinvd
mov %eax,(%rdi)
mov %rax,(%rdi)
mov %ax,(%rdi)
mov %al,(%rdi)
mov %ah,(%rdi)
mov %sil,(%rdi)
mov %r8b,(%r9)
mov (%rsi),%ecx
mov 8(%rbp),%rdx
mov 0x1000(%rbp),%rdx
mov (%rsp),%eax
mov 8(%rsp),%eax
mov 0x1000(%rsp),%eax
mov (%r12),%eax
mov (%r13),%eax
mov (%rax,%rbx,4),%ecx
mov 0x10(%rax,%rbx,8),%ecx
mov 0x12345(,%rbx,2),%ecx
mov 0x1234,%eax
mov 0x1234(%rip),%eax
mov (%r8,%r15,1),%r11
mov -8(%rbp,%r12,4),%r10w
movabs 0x1122334455667788,%al
movabs 0x1122334455667788,%eax
movabs %rax,0x1122334455667788
movabs %ax,0x1122334455667788
addr32 mov 0x11223344,%eax
movabs $0x1122334455667788,%rax
mov $0x12345678,%eax
mov $0x1234,%ax
mov $1,%r10d
mov $1,%r10b
movl $0x12345678,(%rdi)
movq $-1,(%rdi)
movw $0x1234,(%rdi)
movb $0x12,(%rdi)
movl $5,0x10(%rip)
movq $5,0x12345678(%rax,%rcx,8)
movzbl (%rdi),%eax
movzwl (%rdi),%eax
movzbq (%rdi),%rax
movzbw (%rdi),%ax
movsbl (%rdi),%eax
movswq (%rdi),%rax
movslq (%rdi),%rax
movnti %eax,(%rdi)
movnti %rax,(%rdi)
stosb
stosl
stosq
stosw
rep stosb
rep stosq
movsb
movsw
rep movsq
rep movsl
lodsb
scasl
repne scasb
cmpsb
addr32 mov (%edi),%eax
addr32 rep stosb
mov %fs:0x28,%rax
mov %gs:(%rax),%eax
mov %es:(%rax),%eax
lock orl $0,(%rsp)
lock addq $1,(%rax)
lock xadd %eax,(%rdi)
lock cmpxchg %ecx,(%rdi)
lock cmpxchg16b (%rdi)
cmpxchg8b (%rdi)
xchg %eax,(%rdi)
add %eax,(%rdi)
or (%rdi),%ecx
and $0x7f,(%rdi)
andl $0x12345,(%rdi)
andb $1,(%rdi)
cmpw $0x1234,(%rdi)
cmpw $1,(%rdi)
testb $1,(%rdi)
testl $0x100,(%rdi)
testw $0x100,(%rdi)
testq $-2,(%rdi)
test %eax,(%rdi)
sub %rax,(%rdi)
xor %r8,(%r9)
adc $1,%eax
sbb $1,%al
add $0x12345678,%rax
add $0x12,%al
add $0x1234,%ax
inc %eax
decl (%rdi)
neg %eax
notq (%rdi)
mul %ecx
imul %ecx,%eax
imul $3,%eax,%ecx
imul $300,%eax,%ecx
imul $300,%ax,%cx
div %rcx
idivl (%rdi)
shl $3,%eax
shr %cl,%eax
sar %eax
rolb $1,(%rdi)
rcr $5,%r11
shld $4,%eax,%ebx
shrd %cl,%eax,%ebx
bt $3,%eax
bts %eax,(%rdi)
btrl $1,(%rdi)
bsf %eax,%ecx
bsr %eax,%ecx
popcnt %eax,%ecx
lzcnt %eax,%ecx
tzcnt %rax,%rcx
bswap %eax
bswap %r9
cmovne %eax,%ecx
sete %al
setg (%rdi)
lea (%rax,%rbx,2),%rcx
lea 0x10(%rip),%rax
jmp .+2
jmp .+0x1000
{disp32} jmp .+2
call .+0x100
jne .+2
{disp32} jne .+2
je .-0x1000
jmp *%rax
jmp *(%rax)
call *0x10(%rip)
ljmp *(%rax)
lcall *(%rax)
loop .
jrcxz .
xbegin .+0x100
xabort $1
xend
xtest
fld (%rax)
fldl 8(%rax)
fstp %st(1)
fadd %st(2),%st
fninit
fnstsw %ax
fxch
fldz
fildl (%rax)
fistpll (%rax)
movaps %xmm0,%xmm1
movups (%rax),%xmm2
movdqa %xmm8,(%rdi)
movq %xmm0,%rax
movd %eax,%xmm1
pshufd $0x1b,%xmm0,%xmm1
psrlq $3,%xmm1
cmpps $1,%xmm0,%xmm1
shufps $0,%xmm1,%xmm2
pinsrw $1,%eax,%xmm0
pextrw $1,%xmm0,%eax
pshufb %xmm1,%xmm2
palignr $3,%xmm1,%xmm2
pextrq $1,%xmm0,%rax
crc32b %al,%eax
crc32q (%rdi),%rax
movbe (%rdi),%eax
aesenc %xmm1,%xmm2
pclmulqdq $0,%xmm1,%xmm2
sha1rnds4 $1,%xmm0,%xmm1
sha256rnds2 %xmm0,%xmm1,%xmm2
adcx %eax,%ebx
adox %rax,%rbx
rdpkru
wrpkru
extrq $4,$8,%xmm0
insertq $4,$8,%xmm1,%xmm0
extrq %xmm1,%xmm0
emms
femms
pfadd %mm0,%mm1
pfmul (%rax),%mm1
vzeroupper
vzeroall
vmovdqu (%rax),%ymm0
vmovdqu %ymm8,(%r9)
vmovdqu %xmm0,0x12345678(%rip)
vpaddd %ymm1,%ymm2,%ymm3
vpaddd %ymm9,%ymm10,%ymm11
vpshufd $0x1b,%ymm0,%ymm1
vpermq $0x1b,%ymm0,%ymm1
vpbroadcastd %xmm0,%ymm1
vinsertf128 $1,%xmm0,%ymm1,%ymm2
vpsrlq $3,%ymm1,%ymm2
vcmpps $1,%ymm0,%ymm1,%ymm2
vpextrw $1,%xmm0,%eax
vpextrq $1,%xmm0,%rax
andn %eax,%ebx,%ecx
bextr %eax,%ebx,%ecx
shlx %rax,%rbx,%rcx
rorx $3,%eax,%ebx
vfmadd231ps %ymm0,%ymm1,%ymm2
vaddps %zmm0,%zmm1,%zmm2
vmovdqu64 (%rax),%zmm1
vmovdqu64 %zmm17,0x40(%rax)
vpternlogd $0xff,%zmm0,%zmm1,%zmm2
vaddps 0x40(%rax),%zmm1,%zmm2
vaddps 0x44(%rax),%zmm1,%zmm2
vaddps (%rax){1to16},%zmm1,%zmm2{%k1}{z}
kmovw %k1,%k2
kmovq %k1,%rax
vpcmpeqd %zmm0,%zmm1,%k1
vpshufd $1,%zmm0,%zmm1
vaddph %zmm0,%zmm1,%zmm2
vfmadd132ph %xmm0,%xmm1,%xmm2
vpcmov %xmm0,%xmm1,%xmm2,%xmm3
vprotd $3,%xmm0,%xmm1
vprotd %xmm0,%xmm1,%xmm2
vfrczps %xmm0,%xmm1
bextr $0x1234,%eax,%ebx
blcfill %eax,%ebx
llwpcb %eax
lwpins $1,%eax,%ebx
""".strip().splitlines())

LEN32 = reg(PROT32, *"""
pusha
popa
daa
aaa
aam
aad $10
bound %eax,(%ebx)
arpl %ax,(%ebx)
les (%eax),%ecx
lds 4(%eax),%ecx
ljmp $0x10,$0x12345678
lcall $0x8,$0x1000
ljmpw $0x10,$0x1234
push %es
pop %ds
push %cs
into
inc %eax
dec %ecx
mov 0x12345678,%eax
mov %al,0x1234
addr16 mov 0x1234,%ax
addr16 mov (%bx,%si),%ax
addr16 mov 0x10(%bp),%al
mov 0x10(,%eax,4),%ebx
mov (%esp),%eax
mov (%ebp),%eax
mov 0x1234,%eax
movl $1,(%eax)
movw $0x1234,(%eax)
movb $1,0x12345678
mov %eax,(%edi)
mov %ah,(%edi)
movzbl (%esi),%eax
movswl (%esi),%eax
rep stosl
rep movsb
stosw
sysenter
sysexit
hlt
cpuid
rdmsr
wrmsr
vmmcall
vmrun
invd
wbinvd
jmp .+2
jmp .+0x1000
call .+0x100
{disp32} jne .+2
jne .+2
int $0x10
iret
pushl $0x12345678
pushw $0x1234
mov %cr0,%eax
mov %eax,%cr3
lgdt (%eax)
lidt (%eax)
ljmp *(%eax)
vpaddd %ymm1,%ymm2,%ymm3
vmovdqu (%eax),%xmm0
vpermq $0x1b,%ymm0,%ymm1
vaddps %zmm0,%zmm1,%zmm2
vaddps 0x40(%eax),%zmm1,%zmm2
kmovw %k1,%k2
vzeroupper
vpcmov %xmm0,%xmm1,%xmm2,%xmm3
vprotd %xmm0,%xmm1,%xmm2
bextr $0x1234,%eax,%ebx
blcfill %eax,%ebx
extrq $4,$8,%xmm0
popl (%eax)
pop %eax
in $0x60,%al
outsb
or $0x12345678,%eax
addw $0x1234,(%eax)
fld (%eax)
""".strip().splitlines())

LEN16 = reg(PROT16, *"""
mov (%bx,%si),%ax
mov 0x10(%bp,%di),%cx
mov 0x1234(%bx),%dl
mov (%bp),%al
mov 0x1234,%ax
mov 0x1234,%al
mov %ax,0x1234
mov $0x1234,%ax
mov $0x12345678,%eax
movl (%ebx),%eax
movl %eax,(%bx)
movw $0x1234,(%bx)
movl $0x12345678,(%bx)
movb $1,(%di)
addr32 mov (%eax,%ebx,4),%ecx
addr32 mov 0x12345678,%eax
ljmp $0x1000,$0x1234
lcall $0x1000,$0x1234
ljmpl $0x10,$0x12345678
push $0x1234
pushl $0x12345678
jmp .+2
jmp .+0x1000
jne .+0x1000
call .+0x100
int $0x10
iret
lret
ret $4
enter $8,$0
stosw
rep movsb
rep stosl
les (%bx),%ax
lgdtl (%bx)
lidt (%bx)
in $0x60,%al
out %al,%dx
hlt
cpuid
rdmsr
wrmsr
vmmcall
movzbw (%bx),%ax
movsbl (%bx),%eax
and $0x7f,%ax
andw $0x1234,(%bx)
andl $0x12345678,(%bx)
testw $1,(%bx)
testl $1,(%bx)
mov %cr0,%eax
mov %eax,%cr0
ljmp *(%bx)
vpaddd %ymm1,%ymm2,%ymm3
lock incw (%bx)
""".strip().splitlines())


@pytest.mark.parametrize("mode,table", [(LONG64, "LEN64"), (PROT32, "LEN32"),
                                        (PROT16, "LEN16")])
def test_lengths_vs_assembler(lib, asm, mode, table):
    bad = []
    for text in globals()[table]:
        code, (_, odlens) = asm.full(mode, text)
        assert odlens == [len(code)], \
            "objdump splits %r: %s" % (text, odlens)
        r, d = decode(lib, code + b"\x90" * 16, mode)
        if r or d["len"] != len(code):
            bad.append("%s: %s -> r=%d len=%d" % (text, code.hex(), r,
                                                  d["len"]))
    assert not bad, "\n".join(bad)


def test_lengths_other_16bit_modes(lib, asm):
    """Real, vm86 and compat16 decode like 16-bit protected mode, except
    that real and vm86 mode have no VEX."""
    for text in LEN16:
        code = asm(PROT16, text)
        for mode in (REAL, VM86, COMPAT16):
            if mode in (REAL, VM86) and "ymm" in text:
                continue
            r, d = decode(lib, code + b"\x90" * 16, mode)
            assert (r, d["len"]) == (0, len(code)), (text, mode)


def test_lengths_compat32(lib, asm):
    for text in LEN32:
        code = asm(PROT32, text)
        r, d = decode(lib, code, COMPAT32)
        assert (r, d["len"]) == (0, len(code)), text


def objdump_at(blob, mode, tmpdir, starts):
    """objdump's (length, text) of the instruction at each offset in starts
    (missing when objdump did not start an instruction there)."""
    path = os.path.join(str(tmpdir), "blob%d.bin" % mode)
    with open(path, "wb") as f:
        f.write(blob)
    arch = {LONG64: "i386:x86-64", PROT32: "i386", PROT16: "i8086"}[mode]
    out = subprocess.run(["objdump", "-D", "-b", "binary", "-m", arch,
                          "--insn-width=16", path], check=True,
                         capture_output=True, text=True).stdout
    res = {}
    for line in out.splitlines():
        head, sep, rest = line.partition(":\t")
        if not sep:
            continue
        try:
            off = int(head, 16)
        except ValueError:
            continue
        if off in starts:
            hexes, _, txt = rest.partition("\t")
            res[off] = (len(hexes.split()), txt.strip())
    return res


# multi-byte NOPs (0F 1F /0) used as padding between fuzz cases
NOPS = {1: "90", 2: "6690", 3: "0f1f00", 4: "0f1f4000", 5: "0f1f440000",
        6: "660f1f440000", 7: "0f1f8000000000", 8: "0f1f840000000000"}


def pad(n):
    out = b""
    while n:
        k = min(n, 8)
        out += bytes.fromhex(NOPS[k])
        n -= k
    return out


OBJDUMP_PREFIX_WORDS = {"rex", "rex.W", "data16", "data32", "addr32",
                        "addr16", "repz", "repnz", "rep", "lock", "cs", "ds",
                        "es", "ss", "fs", "gs", "bnd", "notrack", "xacquire",
                        "xrelease", "fwait"}


@pytest.mark.parametrize("mode", [LONG64, PROT32, PROT16])
def test_fuzz_opcode_maps_vs_objdump(lib, tmp_path, mode):
    """Every opcode of the 1-byte, 0F, 0F38 and 0F3A maps with random
    ModRM/SIB/displacement/immediate bytes and common prefixes, against
    objdump.  Each case sits in a 16-byte slot, cut to our length and
    padded with NOPs: if objdump disagrees on the length, it disagrees on
    where the instruction in the slot ends.  Only instructions objdump
    decodes as valid (no "(bad)", no lone prefix) are compared."""
    rnd = random.Random(1234 + mode)
    blob, starts, ours = bytearray(), [], []
    for pfx in (b"", b"\x66", b"\x67", b"\xf3", b"\xf2", b"\x66\x2e"):
        for esc in (b"", b"\x0f", b"\x0f\x38", b"\x0f\x3a"):
            for op in range(256):
                if not esc and op == 0x9b:
                    continue    # objdump merges fwait into the next insn
                rex = b""
                if mode == LONG64 and rnd.random() < 0.3:
                    rex = bytes([0x40 | rnd.randrange(16)])
                code = (pfx + rex + esc + bytes([op]) +
                        bytes(rnd.randrange(256) for _ in range(12)))[:15]
                r, d = decode(lib, code, mode)
                if r:
                    continue
                starts.append(len(blob))
                ours.append(code[:d["len"]])
                blob += code[:d["len"]] + pad(16 - d["len"])
    at = objdump_at(bytes(blob), mode, tmp_path, set(starts))
    bad, compared = [], 0
    for s, code in zip(starts, ours):
        if s not in at:
            continue
        n, txt = at[s]
        words = txt.split()
        if "(bad)" in txt or all(w in OBJDUMP_PREFIX_WORDS or
                                 w.startswith("rex") for w in words):
            continue            # invalid, or a prefix printed on its own
        compared += 1
        if n != len(code):
            bad.append("%s: objdump %d (%s), ours %d" % (code.hex(), n, txt,
                                                         len(code)))
    assert compared > 1500
    assert not bad, "\n".join(bad[:40]) + "\n(%d total)" % len(bad)


# --------------------------------------------------------------------------
# decoder unit tests

def test_truncated_input(lib, asm):
    for mode, table in ((LONG64, LEN64), (PROT32, LEN32), (PROT16, LEN16)):
        for text in table:
            code = asm(mode, text)
            for n in range(len(code)):
                r, _ = decode(lib, code, mode, avail=n)
                assert r == -ENODATA, (text, n, r)


def test_too_long(lib):
    assert decode(lib, b"\x66" * 14 + b"\x90", LONG64)[0] == 0
    assert decode(lib, b"\x66" * 15 + b"\x90", LONG64)[0] == -E2BIG
    # 11 prefixes + mov with SIB + disp32 + imm32 = 11 + 2 + 1 + 4 + 4 = 22
    r, _ = decode(lib, b"\x2e" * 11 + bytes.fromhex("c78424" "00000000"
                                                   "00000000"), LONG64)
    assert r == -E2BIG


def test_invalid(lib):
    for code, mode in ((b"\x06", LONG64), (b"\x60", LONG64), (b"\xd6", PROT32),
                       (b"\x0f\x04", LONG64), (b"\xce", LONG64),
                       (b"\xc4\xe0\x78\x00\x00", LONG64),  # VEX map 0
                       (b"\x8f\xeb\x78\x00\x00", LONG64)):  # XOP map 0B
        assert decode(lib, code + b"\x00" * 8, mode)[0] == -EINVAL, code


def test_prefix_fields(lib, asm):
    r, d = decode(lib, asm(LONG64, "mov %fs:0x28,%rax"), LONG64)
    assert (d["seg"], d["op_bytes"], d["rex"]) == (FS, 8, 0x48)
    r, d = decode(lib, asm(LONG64, "addr32 rep stosb"), LONG64)
    assert (d["rep"], d["ad_bytes"], OPS[d["op"]]) == (0xf3, 4, "STOS")
    r, d = decode(lib, asm(LONG64, "mov %r8b,(%r9)"), LONG64)
    assert (d["reg"], d["rm"], d["mem_bytes"]) == (8, 9, 1)
    r, d = decode(lib, asm(LONG64, "mov 0x10(%rax,%rbx,8),%ecx"), LONG64)
    assert d["flags"] & 2 and d["disp"] == 0x10 and d["sib"] == 0xd8
    r, d = decode(lib, asm(LONG64, "mov 0x1234(%rip),%eax"), LONG64)
    assert d["flags"] & 4 and d["disp"] == 0x1234
    r, d = decode(lib, asm(LONG64, "movabs 0x1122334455667788,%al"), LONG64)
    assert d["disp"] == 0x1122334455667788 and OPS[d["op"]] == "LOAD_MOFFS"
    r, d = decode(lib, asm(PROT16, "movl %eax,(%bx)"), PROT16)
    assert (d["op_bytes"], d["ad_bytes"], d["mem_bytes"]) == (4, 2, 4)
    r, d = decode(lib, asm(PROT32, "addr16 mov (%bx,%si),%ax"), PROT32)
    assert (d["op_bytes"], d["ad_bytes"]) == (2, 2)
    # REX before a legacy prefix is ignored: 48 66 89 07 = mov %ax,(%rdi)
    r, d = decode(lib, bytes.fromhex("48668907"), LONG64)
    assert (r, d["len"], d["rex"], d["op_bytes"]) == (0, 4, 0, 2)
    # REX.W wins over 66
    r, d = decode(lib, bytes.fromhex("66488907"), LONG64)
    assert d["op_bytes"] == 8
    # movsxd without REX.W is a 4-byte load
    r, d = decode(lib, bytes.fromhex("6307"), LONG64)
    assert (OPS[d["op"]], d["mem_bytes"], d["op_bytes"]) == ("MOVSX", 4, 4)
    # 63 is arpl outside 64-bit mode
    r, d = decode(lib, bytes.fromhex("6307"), PROT32)
    assert OPS[d["op"]] == "NONE"
    # C4/C5 are LES/LDS with a memory operand in 32-bit mode
    r, d = decode(lib, bytes.fromhex("c40800"), PROT32)
    assert (r, d["len"], d["flags"] & 0x40) == (0, 2, 0)


@pytest.mark.parametrize("cr0,efer,rflags,cs_l,db,mode", [
    (0, 0, 0, 0, 0, REAL),
    (0, 0, 0, 0, 1, REAL),
    (CR0_PE, 0, 0, 0, 0, PROT16),
    (CR0_PE, 0, 0, 0, 1, PROT32),
    (CR0_PE, 0, 1 << 17, 0, 0, VM86),
    (CR0_PE | CR0_PG, EFER_LMA | EFER_LME, 0, 1, 0, LONG64),
    (CR0_PE | CR0_PG, EFER_LMA | EFER_LME, 0, 0, 1, COMPAT32),
    (CR0_PE | CR0_PG, EFER_LMA | EFER_LME, 0, 0, 0, COMPAT16),
])
def test_cpu_mode(lib, cr0, efer, rflags, cs_l, db, mode):
    assert lib.h_cpu_mode(cr0, efer, rflags, cs_l, db) == mode


# --------------------------------------------------------------------------
# guest memory and emulator context

class Guest:
    """Guest RAM (GPA 0..RAM_SIZE) plus the harness' emulator context."""

    def __init__(self, lib):
        self.lib = lib
        self.ram = ctypes.create_string_buffer(RAM_SIZE)
        lib.h_mem(ctypes.addressof(self.ram), RAM_SIZE)
        self.next_page = 0x100000
        self.setup(LONG64)

    def setup(self, mode, cpl=0, cr0=None, cr3=0, cr4=0, efer=None,
              seg=(0,) * 6, maxphy=0, no_write=False):
        if cr0 is None:
            cr0 = CR0_PE | (CR0_PG if mode >= COMPAT16 else 0)
            if mode in (REAL,):
                cr0 = 0
        if efer is None:
            efer = EFER_LMA | EFER_LME if mode >= COMPAT16 else 0
        ctrl = (U64 * 4)(cr0, cr3, cr4, efer)
        self.lib.h_setup(mode, cpl, ctrl, (U64 * 6)(*seg), maxphy,
                         int(no_write))
        self.mode = mode

    # registers
    def set_regs(self, gprs=None, rip=0x1000, rflags=2, **kw):
        g = [0] * 16 if gprs is None else list(gprs)
        names = ["rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi"] + \
            ["r%d" % i for i in range(8, 16)]
        for k, v in kw.items():
            g[names.index(k)] = v & (2**64 - 1)
        self.lib.h_regs(1, (U64 * 16)(*g), (U64 * 2)(rip, rflags))

    def regs(self):
        g, rr = (U64 * 16)(), (U64 * 2)()
        self.lib.h_regs(0, g, rr)
        names = ["rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi"] + \
            ["r%d" % i for i in range(8, 16)]
        d = dict(zip(names, list(g)))
        d["rip"], d["rflags"] = rr[0], rr[1]
        return d

    # emulator
    def give(self, code):
        self.lib.h_give_insn(bytes(code), len(code))

    def start(self, gpa):
        return self.lib.h_start(gpa)

    def complete(self, data=0):
        if isinstance(data, int):
            data = struct.pack("<Q", data & (2**64 - 1))
        return self.lib.h_complete(bytes(data).ljust(8, b"\0"))

    def mmio(self):
        o = (U64 * 4)()
        self.lib.h_mmio(o)
        return o[0], o[1], bool(o[2]), o[3]

    def status(self):
        o, b = (U64 * 7)(), ctypes.create_string_buffer(15)
        self.lib.h_status(o, b)
        return dict(vector=o[0], has_ec=o[1], ec=o[2], cr2=o[3], fail=o[4],
                    avail=o[5], len=o[6], bytes=b.raw[:o[5]])

    # memory
    def wr(self, gpa, data):
        assert 0 <= gpa and gpa + len(data) <= RAM_SIZE
        ctypes.memmove(ctypes.addressof(self.ram) + gpa, bytes(data),
                       len(data))

    def rd(self, gpa, n):
        assert 0 <= gpa and gpa + n <= RAM_SIZE
        return ctypes.string_at(ctypes.addressof(self.ram) + gpa, n)

    def wq(self, gpa, v):
        self.wr(gpa, struct.pack("<Q", v))

    def rq(self, gpa):
        return struct.unpack("<Q", self.rd(gpa, 8))[0]

    def wd(self, gpa, v):
        self.wr(gpa, struct.pack("<I", v))

    def rdw(self, gpa):
        return struct.unpack("<I", self.rd(gpa, 4))[0]

    def alloc(self, size=4096, align=4096):
        self.next_page = (self.next_page + align - 1) & ~(align - 1)
        p = self.next_page
        self.next_page += size
        self.wr(p, b"\0" * size)
        return p

    # walker
    def walk(self, gva, access=0):
        o = (U64 * 4)()
        r = self.lib.h_walk(gva, access, o)
        return r, dict(gpa=o[0], ec=o[1], level=o[2], pte=o[3])

    def read_gva(self, gva, n, access=0):
        buf = ctypes.create_string_buffer(n)
        o = (U64 * 3)()
        r = self.lib.h_read_gva(gva, buf, n, access, o)
        return r, buf.raw[:o[0]], dict(gpa=o[1], ec=o[2])

    def write_gva(self, gva, data, access=0):
        o = (U64 * 3)()
        r = self.lib.h_write_gva(gva, bytes(data), len(data), access, o)
        return r, o[0], dict(gpa=o[1], ec=o[2])


class PT64:
    """4- or 5-level (or PAE with levels=2 below a PDPT) page tables."""

    def __init__(self, g, levels=4):
        self.g, self.levels = g, levels
        self.root = g.alloc()

    def map(self, gva, gpa, leaf=1, flags=P | W | U, nl=P | W | U):
        table = self.root
        for lvl in range(self.levels, leaf, -1):
            idx = (gva >> (12 + 9 * (lvl - 1))) & 511
            e = self.g.rq(table + 8 * idx)
            if not e & P:
                e = self.g.alloc() | nl
                self.g.wq(table + 8 * idx, e)
            table = e & 0x000ffffffffff000
        idx = (gva >> (12 + 9 * (leaf - 1))) & 511
        self.g.wq(table + 8 * idx, gpa | flags | (PS if leaf > 1 else 0))
        return table + 8 * idx

    def entry_addrs(self, gva, leaf=1):
        out, table = [], self.root
        for lvl in range(self.levels, leaf - 1, -1):
            idx = (gva >> (12 + 9 * (lvl - 1))) & 511
            out.append(table + 8 * idx)
            table = self.g.rq(table + 8 * idx) & 0x000ffffffffff000
        return out


class PTPAE:
    def __init__(self, g):
        self.g = g
        self.root = g.alloc(32, 32)
        self.pds = {}

    def map(self, gva, gpa, leaf=1, flags=P | W | U, nl=P | W | U,
            pdpte_extra=0):
        i = (gva >> 30) & 3
        if i not in self.pds:
            self.pds[i] = PT64(self.g, 2)
            self.g.wq(self.root + 8 * i, self.pds[i].root | P | pdpte_extra)
        return self.pds[i].map(gva, gpa, leaf, flags, nl)


class PT32:
    def __init__(self, g):
        self.g = g
        self.root = g.alloc()

    def map(self, gva, gpa, big=False, flags=P | W | U, nl=P | W | U):
        pde_addr = self.root + 4 * ((gva >> 22) & 1023)
        if big:
            hi = (gpa >> 32) & 0xff
            self.g.wd(pde_addr, (gpa & 0xffc00000) | (hi << 13) | flags | PS)
            return pde_addr
        e = self.g.rdw(pde_addr)
        if not e & P:
            e = self.g.alloc() | nl
            self.g.wd(pde_addr, e)
        pte_addr = (e & 0xfffff000) + 4 * ((gva >> 12) & 1023)
        self.g.wd(pte_addr, gpa | flags)
        return pte_addr


@pytest.fixture
def g(lib):
    return Guest(lib)


# --------------------------------------------------------------------------
# page walker

def test_walk_paging_off(g):
    g.setup(PROT32, cr0=CR0_PE)
    assert g.walk(0x12345678) == (W_OK, dict(gpa=0x12345678, ec=0, level=0,
                                             pte=0))
    assert g.walk(0x1_0000_1000)[1]["gpa"] == 0x1000   # 32-bit wrap


def test_walk_32bit(g):
    pt = PT32(g)
    pt.map(0x00401000, 0x00234000)
    pt.map(0x00402000, 0x00235000, flags=P)            # read-only
    pt.map(0x00403000, 0x00236000, flags=P | W)        # supervisor
    pt.map(0x00800000, 0x00400000, big=True)           # 4M page
    pt.map(0xc0000000, 0x12_0040_0000, big=True)       # PSE-36 high bits
    cr0 = CR0_PE | CR0_PG | CR0_WP
    g.setup(PROT32, cr0=cr0, cr3=pt.root, cr4=CR4_PSE)
    assert g.walk(0x00401abc) == (W_OK, dict(gpa=0x234abc, ec=0, level=1,
                                             pte=0x234000 | P | W | U))
    assert g.walk(0x00812345)[1]["gpa"] == 0x412345
    assert g.walk(0x00812345)[1]["level"] == 2
    assert g.walk(0xc0012345)[1]["gpa"] == 0x12_0041_2345
    # not present PDE and PTE
    assert g.walk(0x10000000, ACC_WRITE) == (W_PF, dict(gpa=0, ec=PF_W,
                                                        level=0, pte=0))
    assert g.walk(0x00404000, ACC_USER)[1]["ec"] == PF_U
    # R/W with CR0.WP, U/S
    assert g.walk(0x00402000, ACC_WRITE) == (W_PF, dict(
        gpa=0, ec=PF_P | PF_W, level=1, pte=0x235000 | P))
    assert g.walk(0x00402000, ACC_WRITE | ACC_USER)[1]["ec"] == \
        PF_P | PF_W | PF_U
    assert g.walk(0x00403000, ACC_USER)[1]["ec"] == PF_P | PF_U
    assert g.walk(0x00403000)[0] == W_OK
    g.setup(PROT32, cr0=cr0 & ~CR0_WP, cr3=pt.root, cr4=CR4_PSE)
    assert g.walk(0x00402000, ACC_WRITE)[0] == W_OK
    assert g.walk(0x00402000, ACC_WRITE | ACC_USER)[0] == W_PF
    # without CR4.PSE the PS bit is ignored: the PDE points to a table
    g.setup(PROT32, cr0=cr0, cr3=pt.root, cr4=0)
    g.wd(0x400000 + 0x12 * 4, 0x777000 | P | U)
    r, res = g.walk(0x00812345)
    assert (r, res["level"], res["gpa"]) == (W_OK, 1, 0x777345)
    # 4M page with bit 21 set is a reserved-bit fault
    g.setup(PROT32, cr0=cr0, cr3=pt.root, cr4=CR4_PSE)
    pde = g.rdw(pt.root + 4 * 2)
    g.wd(pt.root + 4 * 2, pde | (1 << 21))
    assert g.walk(0x00812345)[1]["ec"] == PF_P | PF_RSVD
    # PA bits above MAXPHYADDR (36) in a PSE-36 page: reserved
    g.setup(PROT32, cr0=cr0, cr3=pt.root, cr4=CR4_PSE, maxphy=36)
    assert g.walk(0xc0012345)[1]["ec"] == PF_P | PF_RSVD


def test_walk_pae(g):
    pt = PTPAE(g)
    pt.map(0x00401000, 0x00234000)
    pt.map(0x40200000, 0x00600000, leaf=2)
    pt.map(0x80001000, 0x00235000, flags=P | W | U | NX)
    cr0 = CR0_PE | CR0_PG | CR0_WP
    g.setup(PROT32, cr0=cr0, cr3=pt.root, cr4=CR4_PAE, efer=EFER_NXE)
    assert g.walk(0x00401abc)[1]["gpa"] == 0x234abc
    r, res = g.walk(0x40212345)
    assert (r, res["gpa"], res["level"]) == (W_OK, 0x612345, 2)
    assert g.walk(0x80001000)[0] == W_OK
    # A/D updates never touch a PDPTE (bit 5 is reserved there)
    pdpte = g.rq(pt.root + 16)
    assert g.walk(0x80001000, ACC_SET_AD | ACC_WRITE)[0] == W_OK
    assert g.rq(pt.root + 16) == pdpte
    assert g.walk(0x80001000, ACC_FETCH) == (W_PF, dict(
        gpa=0, ec=PF_P | PF_I, level=1,
        pte=0x235000 | P | W | U | A | D | NX))
    # not present PDPTE (index 3)
    assert g.walk(0xc0000000, ACC_FETCH)[1]["ec"] == PF_I
    # NX without EFER.NXE is a reserved bit; fetch no longer reports I/D
    g.setup(PROT32, cr0=cr0, cr3=pt.root, cr4=CR4_PAE, efer=0)
    assert g.walk(0x80001000, ACC_FETCH)[1]["ec"] == PF_P | PF_RSVD
    # reserved PDPTE bits
    g.setup(PROT32, cr0=cr0, cr3=pt.root, cr4=CR4_PAE, efer=EFER_NXE)
    g.wq(pt.root, g.rq(pt.root) | W)
    assert g.walk(0x00401000)[1]["ec"] == PF_P | PF_RSVD
    # 2M page with bits 20:13 set
    g.wq(pt.root, g.rq(pt.root) & ~W)
    addr = pt.map(0x40400000, 0x00800000, leaf=2)
    g.wq(addr, g.rq(addr) | (1 << 13))
    assert g.walk(0x40400000)[1]["ec"] == PF_P | PF_RSVD


@pytest.mark.parametrize("levels", [4, 5])
def test_walk_long(g, levels):
    pt = PT64(g, levels)
    top = 0x00ff_1234_5000 if levels == 5 else 0x7fff_1234_5000
    pt.map(top, 0x00234000)
    pt.map(0x40000000, 0x00600000, leaf=2)
    pt.map(0x80000000, 0x40000000, leaf=3)
    pt.map(0xffff_ffff_8000_0000 if levels == 4 else
           0xfff0_0000_8000_0000, 0x00236000, flags=P | W)
    cr4 = CR4_PAE | (CR4_LA57 if levels == 5 else 0)
    g.setup(LONG64, cr3=pt.root, cr4=cr4, efer=EFER_LMA | EFER_NXE,
            cr0=CR0_PE | CR0_PG | CR0_WP)
    assert g.walk(top | 0x123)[1]["gpa"] == 0x234123
    r, res = g.walk(0x40123456)
    assert (r, res["gpa"], res["level"]) == (W_OK, 0x723456, 2)
    r, res = g.walk(0x81234567)
    assert (r, res["gpa"], res["level"]) == (W_OK, 0x41234567, 3)
    high = 0xffff_ffff_8000_0010 if levels == 4 else 0xfff0_0000_8000_0010
    assert g.walk(high)[1]["gpa"] == 0x236010
    assert g.walk(high, ACC_USER)[1]["ec"] == PF_P | PF_U
    # canonical checks
    noncanon = 0x0000_8000_0000_0000 if levels == 4 else 0x0100_0000_0000_0000
    assert g.walk(noncanon)[0] == W_GP
    assert g.walk(0x8000_0000_0000_0000)[0] == W_GP
    # PS in the top level is reserved
    e = g.rq(pt.root)
    g.wq(pt.root, e | PS)
    assert g.walk(0x40000000)[1]["ec"] == PF_P | PF_RSVD
    g.wq(pt.root, e)
    # 1G page with bits 29:13 set
    addr = pt.entry_addrs(0x80000000, leaf=3)[-1]
    g.wq(addr, g.rq(addr) | (1 << 20))
    assert g.walk(0x80000000)[1]["ec"] == PF_P | PF_RSVD
    # bits above MAXPHYADDR
    g.setup(LONG64, cr3=pt.root, cr4=cr4, efer=EFER_LMA | EFER_NXE,
            cr0=CR0_PE | CR0_PG | CR0_WP, maxphy=40)
    addr = pt.entry_addrs(top)[-1]
    g.wq(addr, g.rq(addr) | (1 << 45))
    assert g.walk(top, ACC_WRITE)[1]["ec"] == PF_P | PF_RSVD | PF_W


def test_walk_smep_smap_nx(g):
    pt = PT64(g, 4)
    pt.map(0x1000, 0x5000)                            # user page
    pt.map(0x2000, 0x6000, flags=P | W)               # supervisor page
    pt.map(0x3000, 0x7000, flags=P | W | U | NX)
    base = dict(cr3=pt.root, efer=EFER_LMA | EFER_NXE,
                cr0=CR0_PE | CR0_PG | CR0_WP)
    g.setup(LONG64, cr4=CR4_PAE | CR4_SMEP | CR4_SMAP, **base)
    assert g.walk(0x1000, ACC_FETCH)[1]["ec"] == PF_P | PF_I
    assert g.walk(0x1000)[1]["ec"] == PF_P
    assert g.walk(0x1000, ACC_WRITE)[1]["ec"] == PF_P | PF_W
    assert g.walk(0x1000, ACC_AC)[0] == W_OK
    assert g.walk(0x1000, ACC_USER | ACC_FETCH)[0] == W_OK
    assert g.walk(0x2000, ACC_FETCH)[0] == W_OK
    assert g.walk(0x3000, ACC_USER | ACC_FETCH)[1]["ec"] == \
        PF_P | PF_U | PF_I
    assert g.walk(0x3000, ACC_USER | ACC_FETCH | ACC_NOCHECK)[0] == W_OK
    g.setup(LONG64, cr4=CR4_PAE, **base)
    assert g.walk(0x1000, ACC_FETCH)[0] == W_OK
    assert g.walk(0x1000)[0] == W_OK


def test_walk_accessed_dirty(g):
    pt = PT64(g, 4)
    pt.map(0x1000, 0x5000)
    g.setup(LONG64, cr3=pt.root, cr4=CR4_PAE, efer=EFER_LMA)
    addrs = pt.entry_addrs(0x1000)
    before = [g.rq(a) for a in addrs]
    assert g.walk(0x1000, ACC_WRITE)[0] == W_OK
    assert [g.rq(a) for a in addrs] == before        # no SET_AD
    assert g.walk(0x1000, ACC_SET_AD)[0] == W_OK
    assert all(g.rq(a) & A for a in addrs)
    assert not g.rq(addrs[-1]) & D
    assert g.walk(0x1000, ACC_SET_AD | ACC_WRITE)[0] == W_OK
    assert g.rq(addrs[-1]) & D
    assert not any(g.rq(a) & D for a in addrs[:-1])
    # no A/D update on a faulting walk
    pt.map(0x2000, 0x6000, flags=P)
    a2 = pt.entry_addrs(0x2000)[-1]
    assert g.walk(0x2000, ACC_SET_AD | ACC_WRITE | ACC_USER)[0] == W_PF
    assert not g.rq(a2) & A


def test_walk_table_in_mmio(g, lib):
    pt = PT64(g, 4)
    pt.map(0x1000, 0x5000)
    g.setup(LONG64, cr3=MMIO_BASE, cr4=CR4_PAE, efer=EFER_LMA)
    assert g.walk(0x1000)[0] == -ENOENT


def test_read_write_gva_across_pages(g):
    pt = PT64(g, 4)
    pt.map(0x10000, 0x30000)
    pt.map(0x11000, 0x20000)
    g.setup(LONG64, cr3=pt.root, cr4=CR4_PAE, efer=EFER_LMA)
    g.wr(0x30ffc, b"abcd")
    g.wr(0x20000, b"efgh")
    r, data, _ = g.read_gva(0x10ffc, 8)
    assert (r, data) == (W_OK, b"abcdefgh")
    r, n, _ = g.write_gva(0x10ffe, b"WXYZ")
    assert (r, n, g.rd(0x30ffe, 2), g.rd(0x20000, 2)) == (W_OK, 4, b"WX",
                                                          b"YZ")
    # second page missing: partial, fault reported for it
    r, data, res = g.read_gva(0x11ffc, 8, ACC_USER)
    assert (r, data, res["ec"]) == (W_PF, g.rd(0x20ffc, 4), PF_U)
    # second page is MMIO
    pt.map(0x12000, MMIO_BASE)
    r, data, res = g.read_gva(0x11ffe, 4)
    assert (r, len(data), res["gpa"]) == (-ENOENT, 2, MMIO_BASE)


# --------------------------------------------------------------------------
# MMIO emulation

ST64 = reg(LONG64,
           "mov %eax,(%rdi)", "mov %rax,(%rdi)", "mov %ax,(%rdi)",
           "mov %al,(%rdi)", "mov %ah,(%rdi)", "mov %sil,(%rdi)",
           "mov %r8b,(%r9)", "mov %r15,0x10(%rdi)", "mov %bh,(%rdi)",
           "movl $0x89abcdef,(%rdi)", "movq $-2,(%rdi)",
           "movq $0x7fffffff,(%rdi)", "movw $0x8001,(%rdi)",
           "movb $0x81,(%rdi)", "movabs %eax,0x1122334455667788",
           "movabs %al,0x1122334455667788", "movabs %rax,0xfee00000",
           "movnti %eax,(%rdi)", "movnti %rax,(%rdi)",
           "mov %eax,%fs:(%rdi)", "addr32 mov %ecx,(%edi)")

REGV = dict(rax=0x1122334455667788, rbx=0x0123456789abcdef,
            rsi=0xfedcba9876543210, r8=0x8899aabbccddeeff,
            r15=0x0f0e0d0c0b0a0908, rcx=0xa1a2a3a4a5a6a7a8)


def expected_store(text):
    m = re.match(r"^(?:mov|movnti|movabs)[lqwb]? \$(-?0x[0-9a-f]+|-?\d+),",
                 text)
    size = {"l": 4, "q": 8, "w": 2, "b": 1}
    if m:
        v = int(m.group(1), 0)
        n = size[text.split()[0][-1]]
        return v & ((1 << (8 * n)) - 1), n
    src = re.search(r"%(\w+),", text).group(1)
    table = {"rax": ("rax", 8, 0), "eax": ("rax", 4, 0), "ax": ("rax", 2, 0),
             "al": ("rax", 1, 0), "ah": ("rax", 1, 8), "bh": ("rbx", 1, 8),
             "sil": ("rsi", 1, 0), "r8b": ("r8", 1, 0), "r15": ("r15", 8, 0),
             "ecx": ("rcx", 4, 0)}
    r, n, sh = table[src]
    return (REGV[r] >> sh) & ((1 << (8 * n)) - 1), n


@pytest.mark.parametrize("text", ST64)
def test_mmio_store_64(g, asm, text):
    code = asm(LONG64, text)
    g.setup(LONG64)
    g.set_regs(rip=0x401000, **REGV)
    before = g.regs()
    g.give(code)
    assert g.start(0xfee00010) == MMIO
    val, n = expected_store(text)
    assert g.mmio() == (0xfee00010, n, True, val)
    after = g.regs()
    assert after["rip"] == 0x401000 + len(code)
    assert {k: v for k, v in after.items() if k != "rip"} == \
        {k: v for k, v in before.items() if k != "rip"}
    # the write needs no data back; complete() is a no-op returning DONE
    assert g.complete() == DONE
    assert g.regs() == after
    assert g.complete() == UNHANDLED and g.status()["fail"] == F_STATE


LD64 = [  # text, data read, register, expected register value
    ("mov (%rdi),%eax", 0x80000001, "rax", 0x80000001),
    ("mov (%rdi),%rax", 0x8000000000000001, "rax", 0x8000000000000001),
    ("mov (%rdi),%ax", 0x8001, "rax", 0x1122334455668001),
    ("mov (%rdi),%al", 0x81, "rax", 0x1122334455667781),
    ("mov (%rdi),%ah", 0x81, "rax", 0x1122334455668188),
    ("mov (%rdi),%bh", 0x81, "rbx", 0x0123456789ab81ef),
    ("mov (%rdi),%sil", 0x81, "rsi", 0xfedcba9876543281),
    ("mov (%rdi),%r8d", 0xffffffff, "r8", 0xffffffff),
    ("mov (%rdi),%r8w", 0xffff, "r8", 0x8899aabbccddffff),
    ("mov (%rdi),%r8b", 0x7f, "r8", 0x8899aabbccddee7f),
    ("movabs 0x1122334455667788,%eax", 0x12345678, "rax", 0x12345678),
    ("movabs 0x1122334455667788,%al", 0x12, "rax", 0x1122334455667712),
    ("movabs 0x1122334455667788,%rax", 0x8877665544332211, "rax",
     0x8877665544332211),
    ("movzbl (%rdi),%eax", 0x80, "rax", 0x80),
    ("movzbw (%rdi),%ax", 0x80, "rax", 0x1122334455660080),
    ("movzbq (%rdi),%rax", 0xff, "rax", 0xff),
    ("movzwl (%rdi),%ecx", 0x8000, "rcx", 0x8000),
    ("movzwq (%rdi),%rcx", 0x8000, "rcx", 0x8000),
    ("movsbl (%rdi),%eax", 0x80, "rax", 0xffffff80),
    ("movsbw (%rdi),%ax", 0x80, "rax", 0x112233445566ff80),
    ("movsbq (%rdi),%rax", 0x80, "rax", 0xffffffffffffff80),
    ("movsbq (%rdi),%rax", 0x7f, "rax", 0x7f),
    ("movswl (%rdi),%ecx", 0x8000, "rcx", 0xffff8000),
    ("movswq (%rdi),%rcx", 0x8000, "rcx", 0xffffffffffff8000),
    ("movslq (%rdi),%rbx", 0x80000000, "rbx", 0xffffffff80000000),
    ("movslq (%rdi),%rbx", 0x7fffffff, "rbx", 0x7fffffff),
    ("movsxd (%rdi),%ebx", 0x80000000, "rbx", 0x80000000),
    ("mov %fs:0x10(%rdi),%rdx", 0x55, "rdx", 0x55),
]
reg(LONG64, *[t[0] for t in LD64])


@pytest.mark.parametrize("text,data,regname,expect", LD64)
def test_mmio_load_64(g, asm, text, data, regname, expect):
    code = asm(LONG64, text)
    g.setup(LONG64)
    g.set_regs(rip=0x401000, rdx=0xdddddddddddddddd, **REGV)
    before = g.regs()
    g.give(code)
    assert g.start(0xfee00020) == MMIO
    gpa, n, wr, _ = g.mmio()
    assert (gpa, wr) == (0xfee00020, False)
    assert g.regs() == before                  # nothing retired yet
    assert g.complete(data & ((1 << (8 * n)) - 1)) == DONE
    after = g.regs()
    assert after[regname] == expect
    assert after["rip"] == 0x401000 + len(code)
    for k in before:
        if k not in (regname, "rip"):
            assert after[k] == before[k], k


def test_mmio_load_sizes(g, asm):
    for text, n in (("mov (%rdi),%al", 1), ("mov (%rdi),%ax", 2),
                    ("mov (%rdi),%eax", 4), ("mov (%rdi),%rax", 8),
                    ("movzwl (%rdi),%eax", 2), ("movsbq (%rdi),%rax", 1),
                    ("movslq (%rdi),%rax", 4)):
        g.setup(LONG64)
        g.set_regs()
        g.give(asm(LONG64, text))
        assert g.start(0xfee00000) == MMIO
        assert g.mmio()[1] == n, text


def native(lib, op, a, b, size, flags):
    fl = U64(flags)
    r = lib.h_native_alu(op, a, b, size, ctypes.byref(fl))
    return r, fl.value


ALU_NAMES = ["add", "or", "adc", "sbb", "and", "sub", "xor", "cmp", "test"]
SFX = {1: "b", 2: "w", 4: "l", 8: "q"}
RNAME = {1: "%cl", 2: "%cx", 4: "%ecx", 8: "%rcx"}
ALU_MR = reg(LONG64, *["%s%s %s,(%%rdi)" % (n, SFX[s], RNAME[s], )
                       for n in ALU_NAMES for s in (1, 2, 4, 8)])
ALU_RM = reg(LONG64, *["%s%s (%%rdi),%s" % (n, SFX[s], RNAME[s])
                       for n in ALU_NAMES[:8] for s in (1, 2, 4, 8)])
ALU_MI = reg(LONG64, *["%s%s $%s,(%%rdi)" % (n, SFX[s], imm)
                       for n in ALU_NAMES for s in (1, 2, 4, 8)
                       for imm in ("0x7f", "-3", "0x1234", "-0x12345678")
                       if not (s == 1 and imm in ("0x1234", "-0x12345678"))
                       and not (s == 2 and imm == "-0x12345678")])


def alu_values(size):
    m = (1 << (8 * size)) - 1
    top = 1 << (8 * size - 1)
    vals = [0, 1, m, top, top - 1, 0x0f & m, 0x10 & m, 0x5555555555555555 & m]
    return vals


def _alu_case(g, lib, asm, text, mem, regval, flags_in):
    name = text.split()[0]
    op = ALU_NAMES.index(name[:-1])
    size = {"b": 1, "w": 2, "l": 4, "q": 8}[name[-1]]
    code = asm(LONG64, text)
    g.setup(LONG64)
    g.set_regs(rip=0x2000, rcx=regval, rflags=flags_in | 2)
    g.give(code)
    assert g.start(0xfee00100) == MMIO
    assert g.mmio()[:3] == (0xfee00100, size, False)
    m = (1 << (8 * size)) - 1
    r = g.complete(mem & m)
    if "(%rdi)," in text:                        # ALU_RM: reg is dest
        exp, fl = native(lib, op, regval, mem, size, flags_in)
        assert r == DONE
        regs = g.regs()
        if op in (7, 8):
            assert regs["rcx"] == regval
        elif size == 4:
            assert regs["rcx"] == exp & m
        else:
            assert regs["rcx"] == (regval & ~m) | (exp & m)
    else:
        if "$" in text:
            imm = int(text.split("$")[1].split(",")[0], 0)
            src = imm & m
        else:
            src = regval & m
        exp, fl = native(lib, op, mem & m, src, size, flags_in)
        if op in (7, 8):
            assert r == DONE
        else:
            assert r == MMIO
            assert g.mmio() == (0xfee00100, size, True, exp & m)
            assert g.regs()["rip"] == 0x2000 + len(code)
            assert g.complete() == DONE
        regs = g.regs()
        assert regs["rcx"] == regval
    assert regs["rip"] == 0x2000 + len(code)
    mask = FL_ARITH
    if op in (1, 4, 6, 8):
        mask &= ~FL_AF                           # undefined for logic ops
    assert regs["rflags"] & mask == fl & mask, \
        "%s mem=%x reg=%x cf=%d: flags %x, native %x" % (
            text, mem, regval, flags_in & 1, regs["rflags"] & mask,
            fl & mask)
    assert regs["rflags"] & ~FL_ARITH == (flags_in | 2) & ~FL_ARITH


@pytest.mark.parametrize("text", ALU_MR + ALU_RM)
def test_mmio_alu_reg(g, lib, asm, text):
    size = {"b": 1, "w": 2, "l": 4, "q": 8}[text.split()[0][-1]]
    rnd = random.Random(text)
    vals = alu_values(size)
    for mem in vals:
        for regval in vals[:5] + [rnd.getrandbits(64)]:
            hi = 0xdead_beef_0000_0000 if size < 8 else 0
            _alu_case(g, lib, asm, text, mem, regval | hi,
                      rnd.choice([0, FL_CF, FL_ARITH]))


@pytest.mark.parametrize("text", ALU_MI)
def test_mmio_alu_imm(g, lib, asm, text):
    size = {"b": 1, "w": 2, "l": 4, "q": 8}[text.split()[0][-1]]
    for mem in alu_values(size):
        for fl in (0, FL_CF):
            _alu_case(g, lib, asm, text, mem, 0x1234, fl)


LOCKED = reg(LONG64, "lock orl $1,(%rdi)", "lock addq %rcx,(%rdi)",
             ".byte 0xf0; cmpl $1,(%rdi)",
             ".byte 0xf0; movl %eax,(%rdi)")


def test_mmio_lock(g, asm):
    g.setup(LONG64)
    g.set_regs()
    g.give(asm(LONG64, "lock orl $1,(%rdi)"))
    assert g.start(0xfee00000) == MMIO
    assert g.complete(0x10) == MMIO
    assert g.mmio() == (0xfee00000, 4, True, 0x11)
    for text in (".byte 0xf0; cmpl $1,(%rdi)",
             ".byte 0xf0; movl %eax,(%rdi)"):
        g.give(asm(LONG64, text))
        assert g.start(0xfee00000) == UNHANDLED, text


UNSUP = reg(LONG64, "xchg %eax,(%rdi)", "vmovdqu %ymm0,(%rdi)",
            "movdqu %xmm0,(%rdi)", "incl (%rdi)", "lock xadd %eax,(%rdi)",
            "cmpxchg %ecx,(%rdi)", "pushq (%rdi)", "mov %eax,%ecx",
            "btsl $1,(%rdi)", "lodsl", "cmpsb", "scasb", "insb", "outsb")


@pytest.mark.parametrize("text", UNSUP)
def test_mmio_unsupported(g, asm, text):
    code = asm(LONG64, text)
    g.setup(LONG64)
    g.set_regs(rip=0x1000)
    before = g.regs()
    g.give(code)
    assert g.start(0xfee00000) == UNHANDLED
    st = g.status()
    assert st["fail"] == F_UNSUPPORTED
    assert st["bytes"] == code and st["len"] == len(code)
    assert g.regs() == before


def test_mmio_decode_failures(g):
    g.setup(LONG64)
    g.set_regs()
    g.give(b"\x06")                            # push es: #UD in 64-bit
    assert g.start(0xfee00000) == UNHANDLED
    assert g.status()["fail"] == F_DECODE
    g.setup(LONG64, cr0=CR0_PE, efer=EFER_LMA)   # paging off: RIP = GPA
    g.set_regs(rip=MMIO_BASE)
    g.give(b"\x89")                   # truncated, and nothing to fetch
    assert g.start(0xfee00000) == UNHANDLED
    assert g.status()["fail"] == F_FETCH
    # too few given bytes: the rest is fetched
    g.wr(0x3000, bytes.fromhex("48890f"))       # mov %rcx,(%rdi)
    g.set_regs(rip=0x3000, rcx=0x1234)
    g.give(b"\x48\x89")
    assert g.start(0xfee00000) == MMIO
    assert g.mmio() == (0xfee00000, 8, True, 0x1234)
    assert g.regs()["rip"] == 0x3003
    g.give(b"\x66" * 15)
    assert g.start(0xfee00000) == UNHANDLED
    assert g.status()["fail"] == F_DECODE


# 32-bit and 16-bit modes
M32 = reg(PROT32, "mov %eax,(%edi)", "mov %ax,(%edi)", "mov %ah,(%edi)",
          "movl $0x89abcdef,(%edi)", "mov (%edi),%ecx", "mov (%edi),%cx",
          "movzbl (%edi),%ecx", "movswl (%edi),%ecx", "mov 0x1234,%eax",
          "addr16 mov %eax,(%bx)", "movzbw (%edi),%cx")
M16 = reg(PROT16, "mov %ax,(%bx)", "movl %eax,(%bx)", "mov (%bx),%cx",
          "movl (%bx),%ecx", "movzbw (%bx),%cx", "movsbl (%bx),%ecx",
          "mov 0x1234,%al", "movw $0x8001,(%bx)", "movl $-2,(%bx)",
          "addr32 mov %eax,(%ebx)")


@pytest.mark.parametrize("mode,text,data,expect", [
    (PROT32, "mov %eax,(%edi)", None, (4, 0x55667788)),
    (PROT32, "mov %ax,(%edi)", None, (2, 0x7788)),
    (PROT32, "mov %ah,(%edi)", None, (1, 0x77)),
    (PROT32, "movl $0x89abcdef,(%edi)", None, (4, 0x89abcdef)),
    (PROT32, "addr16 mov %eax,(%bx)", None, (4, 0x55667788)),
    (PROT32, "mov (%edi),%ecx", 0x80000000, ("rcx", 0x80000000)),
    (PROT32, "mov (%edi),%cx", 0x8000, ("rcx", 0xa1a2a3a4a5a68000)),
    (PROT32, "movzbl (%edi),%ecx", 0x80, ("rcx", 0x80)),
    (PROT32, "movzbw (%edi),%cx", 0x80, ("rcx", 0xa1a2a3a4a5a60080)),
    (PROT32, "movswl (%edi),%ecx", 0x8000, ("rcx", 0xffff8000)),
    (PROT32, "mov 0x1234,%eax", 0x12345678, ("rax", 0x12345678)),
    (PROT16, "mov %ax,(%bx)", None, (2, 0x7788)),
    (PROT16, "movl %eax,(%bx)", None, (4, 0x55667788)),
    (PROT16, "movw $0x8001,(%bx)", None, (2, 0x8001)),
    (PROT16, "movl $-2,(%bx)", None, (4, 0xfffffffe)),
    (PROT16, "addr32 mov %eax,(%ebx)", None, (4, 0x55667788)),
    (PROT16, "mov (%bx),%cx", 0x8001, ("rcx", 0xa1a2a3a4a5a68001)),
    (PROT16, "movl (%bx),%ecx", 0x80000001, ("rcx", 0x80000001)),
    (PROT16, "movzbw (%bx),%cx", 0x80, ("rcx", 0xa1a2a3a4a5a60080)),
    (PROT16, "movsbl (%bx),%ecx", 0x80, ("rcx", 0xffffff80)),
    (PROT16, "mov 0x1234,%al", 0x42, ("rax", 0x1122334455667742)),
])
def test_mmio_legacy_modes(g, asm, mode, text, data, expect):
    code = asm(mode, text)
    for m in ((REAL, VM86, PROT16, COMPAT16) if mode == PROT16
              else (PROT32, COMPAT32)):
        g.setup(m)
        g.set_regs(rip=0xfff0, **REGV)
        g.give(code)
        assert g.start(0xa0000) == MMIO
        gpa, n, wr, val = g.mmio()
        if data is None:
            assert (wr, n, val) == (True, expect[0], expect[1])
        else:
            assert wr is False
            assert g.complete(data) == DONE
            assert g.regs()[expect[0]] == expect[1]
        assert g.regs()["rip"] == 0xfff0 + len(code)


STR = reg(LONG64, "stosb", "stosw", "stosl", "stosq", "rep stosb",
          "rep stosl", "rep stosq", "addr32 rep stosl", "movsb", "movsl",
          "rep movsb", "rep movsq", "rep movsw", "addr32 rep movsl",
          "rep movsl %fs:(%rsi),%es:(%rdi)", "repne stosb")
STR32 = reg(PROT32, "addr16 rep stosl", "rep stosw", "addr16 rep movsb",
            "rep movsl")


@pytest.mark.parametrize("text,size", [("stosb", 1), ("stosw", 2),
                                       ("stosl", 4), ("stosq", 8)])
@pytest.mark.parametrize("df", [0, FL_DF])
def test_stos_single(g, asm, text, size, df):
    code = asm(LONG64, text)
    g.setup(LONG64)
    g.set_regs(rip=0x1000, rflags=2 | df, rdi=0x5000, rcx=7, **{
        "rax": REGV["rax"]})
    g.give(code)
    assert g.start(0xfee00000) == MMIO
    assert g.mmio() == (0xfee00000, size, True,
                        REGV["rax"] & ((1 << (8 * size)) - 1))
    r = g.regs()
    assert r["rdi"] == (0x5000 - size if df else 0x5000 + size)
    assert r["rcx"] == 7 and r["rip"] == 0x1000 + len(code)
    assert g.complete() == DONE


@pytest.mark.parametrize("text", ["rep stosb", "rep stosl", "rep stosq",
                                  "repne stosb"])
@pytest.mark.parametrize("df", [0, FL_DF])
def test_rep_stos_iterates(g, asm, text, df):
    code = asm(LONG64, text)
    size = {"b": 1, "l": 4, "q": 8}[text[-1]]
    g.setup(LONG64)
    g.set_regs(rip=0x1000, rflags=2 | df, rdi=0x5000, rcx=3, rax=0xabcdef)
    addrs = []
    for i in range(3):
        g.give(code)
        assert g.start(0xfee00000 + 0x10 * i) == MMIO
        addrs.append(g.mmio()[0])
        assert g.complete() == DONE
        r = g.regs()
        step = -size if df else size
        assert r["rdi"] == 0x5000 + step * (i + 1)
        assert r["rcx"] == 2 - i
        assert r["rip"] == (0x1000 + len(code) if i == 2 else 0x1000)
    # count of zero: nothing happens but RIP moves on
    g.set_regs(rip=0x1000, rdi=0x5000, rcx=0)
    g.give(code)
    assert g.start(0xfee00000) == DONE
    assert g.regs()["rip"] == 0x1000 + len(code)
    assert g.regs()["rdi"] == 0x5000


def test_rep_stos_address_size(g, asm):
    # 67 in 64-bit mode: ECX/EDI, zero-extended on write
    g.setup(LONG64)
    g.set_regs(rip=0x1000, rdi=0xffff_0000_ffff_fffc, rcx=0xffff_0000_0000_0002)
    g.give(asm(LONG64, "addr32 rep stosl"))
    assert g.start(0xfee00000) == MMIO
    r = g.regs()
    assert (r["rdi"], r["rcx"], r["rip"]) == (0, 1, 0x1000)
    # 67 in 32-bit mode: DI/CX only, upper bits kept
    g.setup(PROT32)
    g.set_regs(rip=0x1000, rdi=0x1234_fffe, rcx=0x5678_0001)
    code = asm(PROT32, "addr16 rep stosl")
    g.give(code)
    assert g.start(0xfee00000) == MMIO
    r = g.regs()
    assert (r["rdi"], r["rcx"], r["rip"]) == (0x1234_0002, 0x5678_0000,
                                              0x1000 + len(code))
    # the upper part of ECX does not count with a 16-bit address size
    g.set_regs(rip=0x1000, rdi=0, rcx=0x5678_0000)
    g.give(code)
    assert g.start(0xfee00000) == DONE


def identity_long(g, size=RAM_SIZE):
    pt = PT64(g, 4)
    for a in range(0, size, 2 << 20):
        pt.map(a, a, leaf=2)
    pt.map(MMIO_BASE, MMIO_BASE, leaf=2)
    g.setup(LONG64, cr3=pt.root, cr4=CR4_PAE, efer=EFER_LMA | EFER_NXE,
            cr0=CR0_PE | CR0_PG | CR0_WP)
    return pt


@pytest.mark.parametrize("df", [0, FL_DF])
def test_movs_ram_to_mmio(g, asm, df):
    identity_long(g)
    code = asm(LONG64, "rep movsl")
    g.wr(0x7000, bytes(range(16)))
    src = 0x7004
    g.set_regs(rip=0x1000, rflags=2 | df, rsi=src, rdi=MMIO_BASE + 0x40,
               rcx=2)
    outs = []
    for i in range(2):
        g.give(code)
        assert g.start(MMIO_BASE + 0x40) == MMIO
        gpa, n, wr, val = g.mmio()
        outs.append((gpa, n, wr, val))
        assert g.complete() == DONE
    step = -4 if df else 4
    assert outs[0] == (MMIO_BASE + 0x40, 4, True,
                       struct.unpack("<I", g.rd(src, 4))[0])
    assert outs[1] == (MMIO_BASE + 0x40 + step, 4, True,
                       struct.unpack("<I", g.rd(src + step, 4))[0])
    r = g.regs()
    assert (r["rsi"], r["rdi"], r["rcx"], r["rip"]) == (
        src + 2 * step, MMIO_BASE + 0x40 + 2 * step, 0, 0x1000 + len(code))


def test_movs_mmio_to_ram(g, asm):
    identity_long(g)
    code = asm(LONG64, "movsq")
    g.set_regs(rip=0x1000, rsi=MMIO_BASE + 8, rdi=0x7000)
    g.give(code)
    assert g.start(MMIO_BASE + 8) == MMIO
    assert g.mmio()[:3] == (MMIO_BASE + 8, 8, False)
    assert g.regs()["rip"] == 0x1000
    assert g.complete(0x0102030405060708) == DONE
    assert g.rq(0x7000) == 0x0102030405060708
    r = g.regs()
    assert (r["rsi"], r["rdi"], r["rip"]) == (MMIO_BASE + 16, 0x7008,
                                              0x1000 + len(code))


def test_movs_mmio_to_mmio(g, asm):
    identity_long(g)
    code = asm(LONG64, "movsw")
    g.set_regs(rip=0x1000, rsi=MMIO_BASE, rdi=MMIO_BASE + 0x100)
    g.give(code)
    assert g.start(MMIO_BASE) == MMIO
    assert g.mmio()[:3] == (MMIO_BASE, 2, False)
    assert g.complete(0xbeef) == MMIO
    assert g.mmio() == (MMIO_BASE + 0x100, 2, True, 0xbeef)
    assert g.regs()["rip"] == 0x1000 + len(code)
    assert g.complete() == DONE


def test_movs_segment_override_and_paging(g, asm):
    """fs: source in 64-bit mode uses the FS base; the source is a
    non-identity mapping; A bits get set on the RAM side."""
    pt = identity_long(g)
    leaf = pt.map(0x7f00_0000_0000, 0x9000)
    g.wr(0x9010, b"\x11\x22\x33\x44")
    seg = [0x1111, 0, 0x2222, 0x3333, 0x7f00_0000_0000, 0]
    g.setup(LONG64, cr3=pt.root, cr4=CR4_PAE, efer=EFER_LMA | EFER_NXE,
            cr0=CR0_PE | CR0_PG | CR0_WP, seg=seg)
    code = asm(LONG64, "rep movsl %fs:(%rsi),%es:(%rdi)")
    g.set_regs(rip=0x1000, rsi=0x10, rdi=MMIO_BASE, rcx=1)
    g.give(code)
    assert g.start(MMIO_BASE) == MMIO
    assert g.mmio() == (MMIO_BASE, 4, True, 0x44332211)
    assert g.rq(leaf) & A


def test_movs_faults(g, asm):
    pt = identity_long(g)
    pt.map(0x7f00_0000_0000, 0x9000, flags=P)           # read-only
    code = asm(LONG64, "movsb")
    # destination not writable: #PF before any MMIO access
    g.set_regs(rip=0x1000, rsi=MMIO_BASE, rdi=0x7f00_0000_0010)
    g.give(code)
    assert g.start(MMIO_BASE) == EXCEPTION
    st = g.status()
    assert (st["vector"], st["has_ec"], st["ec"], st["cr2"]) == (
        14, 1, PF_P | PF_W, 0x7f00_0000_0010)
    assert g.regs()["rip"] == 0x1000
    # source not present
    g.set_regs(rip=0x1000, rsi=0x7e00_0000_0000, rdi=MMIO_BASE)
    g.give(code)
    assert g.start(MMIO_BASE) == EXCEPTION
    assert (g.status()["ec"], g.status()["cr2"]) == (0, 0x7e00_0000_0000)
    # non-canonical source: #GP(0)
    g.set_regs(rip=0x1000, rsi=0x8000_0000_0000, rdi=MMIO_BASE)
    g.give(code)
    assert g.start(MMIO_BASE) == EXCEPTION
    assert (g.status()["vector"], g.status()["ec"]) == (13, 0)
    # user mode: a supervisor page is out of reach
    pt.map(0x7d00_0000_0000, 0x9000, flags=P | W)
    g.setup(LONG64, cpl=3, cr3=pt.root, cr4=CR4_PAE,
            efer=EFER_LMA | EFER_NXE, cr0=CR0_PE | CR0_PG | CR0_WP)
    g.set_regs(rip=0x1000, rsi=0x7d00_0000_0000, rdi=MMIO_BASE)
    g.give(code)
    assert g.start(MMIO_BASE) == EXCEPTION
    assert g.status()["ec"] == PF_P | PF_U


def test_movs_needs_write_gpa(g, asm):
    identity_long(g)
    g.setup(LONG64, cr3=0, cr0=CR0_PE, efer=EFER_LMA, no_write=True)
    g.set_regs(rip=0x1000, rsi=MMIO_BASE, rdi=0x7000)
    g.give(asm(LONG64, "movsb"))
    assert g.start(MMIO_BASE) == MMIO
    assert g.complete(1) == UNHANDLED
    assert g.status()["fail"] == F_MEM


def test_movs_legacy_16bit_address(g, asm):
    """addr16 rep movsb in 32-bit protected mode, paging off, DS base."""
    g.setup(PROT32, seg=[0, 0, 0, 0x10000, 0, 0])
    g.wr(0x10000 + 0xfffe, b"\xaa\xbb\xcc")
    code = asm(PROT32, "addr16 rep movsb")
    g.set_regs(rip=0x1000, rsi=0xabcd_fffe, rdi=0x0000_0010, rcx=0x2)
    g.lib.h_add_mmio(0x0, 0x1000)
    g.give(code)
    assert g.start(0x10) == MMIO
    assert g.mmio() == (0x10, 1, True, 0xaa)
    r = g.regs()
    assert (r["rsi"], r["rdi"], r["rcx"]) == (0xabcd_ffff, 0x11, 1)
    g.give(code)
    assert g.start(0x11) == MMIO
    r = g.regs()
    # SI wraps at 16 bits, the upper half of ESI is kept
    assert (r["rsi"], r["rcx"], r["rip"]) == (0xabcd_0000, 0,
                                             0x1000 + len(code))
    assert g.mmio() == (0x11, 1, True, 0xbb)


# --------------------------------------------------------------------------
# instruction fetch and skip

SKIP64 = reg(LONG64, "hlt", "cpuid", "rdmsr", "wrmsr", "vmmcall", "invd",
             "wbinvd", "rdtsc", "rdtscp", "xsetbv", "pause", "mov %rax,%cr3",
             "invlpg 0x10(%rax,%rbx,8)", "lock orl $0,0x12345678(%rip)",
             "vpternlogd $0xff,0x40(%rax),%zmm1,%zmm2{%k3}")


@pytest.mark.parametrize("text", SKIP64)
def test_skip_fetches_across_pages(g, asm, text):
    code = asm(LONG64, text)
    pt = PT64(g, 4)
    pt.map(0x40000, 0x20000)                 # code page 1
    pt.map(0x41000, 0x31000)                 # page 2 elsewhere
    g.setup(LONG64, cr3=pt.root, cr4=CR4_PAE, efer=EFER_LMA | EFER_NXE,
            cr0=CR0_PE | CR0_PG)
    for split in range(len(code) + 1):
        rip = 0x41000 - split
        g.wr(0x21000 - split, code[:split])
        g.wr(0x31000, code[split:] + b"\xcc" * 16)
        g.set_regs(rip=rip)
        assert g.lib.h_skip() == DONE, split
        assert g.regs()["rip"] == rip + len(code)
        assert g.status()["len"] == len(code)


def test_skip_page_fault_on_second_page(g, asm):
    code = asm(LONG64, "wrmsr")
    pt = PT64(g, 4)
    pt.map(0x40000, 0x20000)
    g.setup(LONG64, cr3=pt.root, cr4=CR4_PAE, efer=EFER_LMA | EFER_NXE,
            cr0=CR0_PE | CR0_PG)
    g.wr(0x20fff, code[:1])
    g.set_regs(rip=0x40fff)
    assert g.lib.h_skip() == EXCEPTION
    st = g.status()
    assert (st["vector"], st["ec"], st["cr2"]) == (14, PF_I, 0x41000)
    assert g.regs()["rip"] == 0x40fff
    # a 1-byte instruction at the end of the page does not need page 2
    g.wr(0x20fff, b"\xf4")
    assert g.lib.h_skip() == DONE
    assert g.regs()["rip"] == 0x41000
    # user mode fetch from a supervisor page; NX page
    pt.map(0x50000, 0x20000, flags=P | W)
    pt.map(0x60000, 0x20000, flags=P | W | U | NX)
    g.setup(LONG64, cpl=3, cr3=pt.root, cr4=CR4_PAE,
            efer=EFER_LMA | EFER_NXE, cr0=CR0_PE | CR0_PG)
    g.set_regs(rip=0x50000)
    assert g.lib.h_skip() == EXCEPTION
    assert g.status()["ec"] == PF_P | PF_U | PF_I
    g.set_regs(rip=0x60000)
    assert g.lib.h_skip() == EXCEPTION
    assert g.status()["ec"] == PF_P | PF_U | PF_I


def test_skip_fetch_from_mmio(g):
    g.setup(PROT32)
    g.set_regs(rip=MMIO_BASE)
    assert g.lib.h_skip() == UNHANDLED
    assert g.status()["fail"] == F_FETCH


def test_skip_legacy_modes(g, asm):
    code16 = asm(PROT16, "ljmp $0x1000,$0x1234")
    g.setup(REAL, seg=[0, 0xf0000, 0, 0, 0, 0])
    g.wr(0xf0000 + 0xfff0, code16)
    g.set_regs(rip=0xfff0)
    assert g.lib.h_skip() == DONE
    assert g.regs()["rip"] == 0xfff0 + 5
    # 32-bit: EIP wraps at 4 GiB, the linear address too
    code = asm(PROT32, "cpuid")
    g.setup(PROT32, seg=[0, 0x1000, 0, 0, 0, 0])
    g.wr(0x1000 - 1, code[:1])
    g.wr(0x1000, code[1:])
    g.set_regs(rip=0xffff_ffff)
    assert g.lib.h_skip() == DONE
    assert g.regs()["rip"] == 1


def test_start_uses_fetch(g, asm):
    identity_long(g)
    code = asm(LONG64, "mov %eax,(%rdi)")
    g.wr(0x3000, code)
    g.set_regs(rip=0x3000, rax=0x12345678)
    assert g.start(MMIO_BASE) == MMIO
    assert g.mmio() == (MMIO_BASE, 4, True, 0x12345678)
    # given bytes are consumed: the next start fetches again
    g.give(asm(LONG64, "mov %al,(%rdi)"))
    g.set_regs(rip=0x3000, rax=0x12345678)
    assert g.start(MMIO_BASE) == MMIO and g.mmio()[1] == 1
    g.set_regs(rip=0x3000, rax=0x12345678)
    assert g.start(MMIO_BASE) == MMIO and g.mmio()[1] == 4


def test_reset_drops_pending(g, asm):
    g.setup(LONG64)
    g.set_regs()
    g.give(asm(LONG64, "mov (%rdi),%eax"))
    assert g.start(MMIO_BASE) == MMIO
    g.lib.h_reset()
    assert g.complete(1) == UNHANDLED
    assert g.status()["fail"] == F_STATE


@pytest.mark.parametrize("paging", ["32bit", "pae", "la57"])
def test_fetch_and_movs_through_paging(g, asm, paging):
    """Instruction fetch and the RAM side of movs go through the guest page
    tables of each paging mode (non-identity mappings)."""
    if paging == "la57":
        pt = PT64(g, 5)
        code_va, data_va = 0x00ff_8000_0000_0000, 0x00ff_8000_0010_0000
        mode, cr4, efer = LONG64, CR4_PAE | CR4_LA57, EFER_LMA | EFER_NXE
        text = "rep movsl"
        pt.map(0xfee00000, MMIO_BASE)
    else:
        pt = PT32(g) if paging == "32bit" else PTPAE(g)
        code_va, data_va = 0x8000_0000, 0xc000_1000
        mode, cr4, efer = PROT32, (0 if paging == "32bit" else CR4_PAE), 0
        text = "rep movsl"
        pt.map(0xfee00000, MMIO_BASE)
    code = asm(mode if mode == PROT32 else LONG64, text)
    pt.map(code_va, 0x30000)
    pt.map(data_va, 0x31000)
    g.setup(mode, cr3=pt.root, cr4=cr4, efer=efer,
            cr0=CR0_PE | CR0_PG | CR0_WP)
    g.wr(0x30000, code)
    # MMIO -> RAM, DF=1, two elements
    g.set_regs(rip=code_va, rflags=2 | FL_DF, rsi=0xfee00010,
               rdi=data_va + 0x104, rcx=2)
    assert g.start(MMIO_BASE + 0x10) == MMIO
    assert g.mmio()[:3] == (MMIO_BASE + 0x10, 4, False)
    assert g.complete(0xcafef00d) == DONE, g.status()
    assert g.rdw(0x31104) == 0xcafef00d
    r = g.regs()
    assert (r["rsi"], r["rdi"], r["rcx"], r["rip"]) == (
        0xfee0000c, data_va + 0x100, 1, code_va)
    assert g.start(MMIO_BASE + 0xc) == MMIO
    assert g.complete(0x12345678) == DONE
    assert g.rdw(0x31100) == 0x12345678
    assert g.regs()["rip"] == code_va + len(code)
    # destination not mapped: #PF with the linear address
    g.set_regs(rip=code_va, rsi=0xfee00010, rdi=data_va + 0x1000, rcx=1)
    assert g.start(MMIO_BASE + 0x10) == EXCEPTION
    st = g.status()
    assert (st["vector"], st["ec"], st["cr2"]) == (14, PF_W,
                                                   data_va + 0x1000)


# --------------------------------------------------------------------------
# Accesses that cross a page boundary between RAM and MMIO: the RAM side is
# done by the emulator, the MMIO side is the exit (as kvm_amd splits them).

SREG_SS = 2


def ram_then_mmio(g):
    """Identity map all of RAM and the first page after it (MMIO)."""
    pt = identity_long(g)
    pt.map(RAM_SIZE, RAM_SIZE)
    return pt


@pytest.mark.parametrize("text,regs", [
    ("mov %rax,(%rdi)", dict(rdi=RAM_SIZE - 4)),
    ("mov %rax,0x10(%rbx,%rcx,4)", dict(rbx=RAM_SIZE - 0x18, rcx=1)),
    ("mov %rax,-0x8(%rbp)", dict(rbp=RAM_SIZE + 4)),
    ("mov %rax,0x7fe000(%rip)", {}),
])
def test_mmio_store_crossing_ram_then_mmio(g, asm, text, regs):
    ram_then_mmio(g)
    code = asm(LONG64, text)
    rip = 0x1000
    if "rip" in text:                  # operand at RAM_SIZE - 4
        rip = RAM_SIZE - 4 - 0x7fe000 - len(code)
    g.set_regs(rip=rip, rax=0x1122334455667788, **regs)
    g.give(code)
    assert g.start(RAM_SIZE) == MMIO
    assert g.mmio() == (RAM_SIZE, 4, True, 0x11223344)
    assert g.rd(RAM_SIZE - 4, 4) == bytes.fromhex("88776655")
    assert g.complete() == DONE
    assert g.regs()["rip"] == rip + len(code)


def test_mmio_load_crossing_ram_then_mmio(g, asm):
    ram_then_mmio(g)
    code = asm(LONG64, "mov (%rdi),%rax")
    g.wr(RAM_SIZE - 2, b"\xaa\xbb")
    g.set_regs(rip=0x1000, rdi=RAM_SIZE - 2)
    g.give(code)
    assert g.start(RAM_SIZE) == MMIO
    assert g.mmio()[:3] == (RAM_SIZE, 6, False)
    assert g.regs()["rip"] == 0x1000
    assert g.complete(0x060504030201) == DONE
    assert g.regs()["rax"] == 0x060504030201bbaa
    assert g.regs()["rip"] == 0x1000 + len(code)


def test_mmio_crossing_mmio_then_ram(g, asm):
    pt = identity_long(g)
    pt.map(0x900000, MMIO_BASE)
    pt.map(0x901000, 0x5000)
    code = asm(LONG64, "mov %eax,(%rdi)")
    g.set_regs(rip=0x1000, rax=0x55667788, rdi=0x900ffe)
    g.give(code)
    assert g.start(MMIO_BASE + 0xffe) == MMIO
    assert g.mmio() == (MMIO_BASE + 0xffe, 2, True, 0x7788)
    assert g.rd(0x5000, 2) == b"\x66\x55"
    assert g.complete() == DONE
    code = asm(LONG64, "movzwl (%rdi),%ecx")
    g.set_regs(rip=0x1000, rdi=0x900fff, rcx=-1)
    g.give(code)
    assert g.start(MMIO_BASE + 0xfff) == MMIO
    assert g.mmio()[:3] == (MMIO_BASE + 0xfff, 1, False)
    assert g.complete(0x77) == DONE
    assert g.regs()["rcx"] == 0x6677          # RAM byte 0x66 above


def test_mmio_crossing_rmw_and_both_mmio_unhandled(g, asm):
    pt = ram_then_mmio(g)
    g.set_regs(rip=0x1000, rdi=RAM_SIZE - 2)
    g.give(asm(LONG64, "addl $1,(%rdi)"))
    assert g.start(RAM_SIZE) == UNHANDLED
    pt.map(0x900000, MMIO_BASE)
    pt.map(0x901000, MMIO_BASE + 0x1000)
    g.set_regs(rip=0x1000, rdi=0x900ffe)
    g.give(asm(LONG64, "mov %eax,(%rdi)"))
    assert g.start(MMIO_BASE + 0xffe) == UNHANDLED
    assert g.regs()["rip"] == 0x1000


def test_mmio_crossing_16bit_addressing(g, asm):
    # bp-based 16-bit operands default to SS: only SS's base puts the
    # operand at RAM_SIZE - 2, across into MMIO (no paging in PROT16).
    code = asm(PROT16, "mov %eax,0x10(%bp,%si)")
    seg = [0] * 6
    seg[SREG_SS] = RAM_SIZE - 0x10000
    g.setup(PROT16, seg=tuple(seg))
    g.set_regs(rip=0x100, rax=0x55667788, rbp=0xff00, rsi=0xee)
    g.give(code)
    assert g.start(RAM_SIZE) == MMIO
    assert g.mmio() == (RAM_SIZE, 2, True, 0x5566)
    assert g.rd(RAM_SIZE - 2, 2) == b"\x88\x77"
