"""Loading a Linux kernel: bzImage (64-bit boot protocol) or ELF vmlinux."""
