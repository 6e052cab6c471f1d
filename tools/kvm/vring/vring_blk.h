/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * virtio-blk fast path: the C side of onekvm._vring (see vring_blk.c).
 *
 * cffi's cdef() reads this file as it is, so it holds declarations only: no
 * include guard, no #include (it accepts neither); includers bring
 * <stdint.h> first.
 */

/* One range of guest RAM and where the VMM mapped it. */
struct okvm_region {
	uint64_t gpa;
	uint64_t size;
	uint8_t *hva;
};

/*
 * One split virtqueue as queue.SplitQueue set it up (rings checked inside
 * guest RAM, aligned, size a power of two); the indices are copied in
 * before and out after each call.
 */
struct okvm_vq {
	uint8_t *desc;
	uint8_t *avail;
	uint8_t *used;
	uint32_t size;
	uint16_t last_avail;
	uint16_t used_idx;
	uint8_t indirect;
	uint8_t event_idx;
	uint8_t has_signalled;	/* signalled holds the used index at the last interrupt */
	uint16_t signalled;
};

/* The image behind the device. */
struct okvm_blk {
	int fd;
	int readonly;
	uint64_t bytes;
};

/* Why okvm_blk_serve() stopped. */
enum okvm_stop {
	OKVM_STOP_EMPTY = 0,	/* no chain left in the available ring */
	OKVM_STOP_PYTHON = 1,	/* the next chain is for the Python device, not consumed */
	OKVM_STOP_BUDGET = 2,	/* served as many as asked */
};

int okvm_blk_serve(struct okvm_vq *q, const struct okvm_region *regions,
		   int nregions, const struct okvm_blk *blk, int budget,
		   int *stop);
int okvm_blk_kick(struct okvm_vq *q, const struct okvm_region *regions,
		  int nregions, const struct okvm_blk *blk, int kick_fd,
		  int budget, int *stop, int *interrupt);
