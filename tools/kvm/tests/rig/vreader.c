// SPDX-License-Identifier: GPL-2.0-only
/*
 * vreader: read throughput of a file or block device, for bench_virtio.py.
 *
 *   vreader seq|rand PATH BLOCK MAX_BYTES MAX_SECONDS [direct]
 *
 * seq reads PATH from offset 0 in BLOCK-sized reads; rand reads BLOCK-sized,
 * BLOCK-aligned blocks at pseudo-random offsets (a fixed LCG, so every run
 * reads the same blocks).  Either stops after MAX_BYTES or MAX_SECONDS,
 * whichever comes first, and prints one line:
 *
 *   vreader MODE BYTES SECONDS
 *
 * "direct" opens with O_DIRECT (the guest page cache out of the way).
 * Built static on the host (gcc -static): the L2 initramfs has no libc.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	uint64_t seed = 0x9e3779b97f4a7c15ULL, done = 0, max_bytes, blocks, off = 0;
	double max_sec, t0, t;
	int rnd, fd, flags = O_RDONLY;
	size_t bs;
	off_t size;
	void *buf;

	if (argc < 6 || (strcmp(argv[1], "seq") && strcmp(argv[1], "rand"))) {
		fprintf(stderr,
			"usage: vreader seq|rand PATH BLOCK MAX_BYTES MAX_SECONDS [direct]\n");
		return 2;
	}
	rnd = !strcmp(argv[1], "rand");
	bs = strtoul(argv[3], NULL, 0);
	max_bytes = strtoull(argv[4], NULL, 0);
	max_sec = strtod(argv[5], NULL);
	if (argc > 6 && !strcmp(argv[6], "direct"))
		flags |= O_DIRECT;
	if (!bs || bs % 512) {
		fprintf(stderr, "vreader: block size must be a multiple of 512\n");
		return 2;
	}
	fd = open(argv[2], flags);
	if (fd < 0) {
		perror(argv[2]);
		return 1;
	}
	size = lseek(fd, 0, SEEK_END);
	if (size < (off_t)bs) {
		fprintf(stderr, "vreader: %s is smaller than one block\n", argv[2]);
		return 1;
	}
	blocks = size / bs;
	if (posix_memalign(&buf, 4096, bs)) {
		fprintf(stderr, "vreader: out of memory\n");
		return 1;
	}
	t0 = now();
	t = t0;
	while (done < max_bytes && t - t0 < max_sec) {
		ssize_t n;

		if (rnd) {
			seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
			off = (seed >> 17) % blocks * bs;
		} else if (off + bs > (uint64_t)size) {
			break;
		}
		n = pread(fd, buf, bs, off);
		if (n != (ssize_t)bs) {
			perror("vreader: pread");
			return 1;
		}
		done += n;
		if (!rnd)
			off += n;
		t = now();
	}
	printf("vreader %s %llu %.6f\n", argv[1], (unsigned long long)done, t - t0);
	return 0;
}
