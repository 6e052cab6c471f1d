// SPDX-License-Identifier: GPL-2.0-only
/*
 * virtio-blk fast path of onekvm's Python VMM (module onekvm._vring).
 *
 * Walking a descriptor chain and building the views for preadv() is most of
 * what a 4 KiB request costs the device worker in Python (~15 us natively,
 * dozens of times that in the nested rig, where it delays every completion).
 * This serves the common requests - IN, OUT and FLUSH on well-formed chains -
 * in one call from virtio/blk.py.
 *
 * virtio/queue.py and virtio/blk.py stay the reference.  At anything else -
 * another request type, a chain that breaks a ring rule, more segments than
 * one preadv() takes - this stops before consuming the chain, and Python
 * serves it or puts the device into DEVICE_NEEDS_RESET with its own message.
 * The guest may rewrite its rings at any time: every descriptor and header
 * is copied out of guest memory once, then checked, then used.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "vring_blk.h"

#define DESC_F_NEXT	1
#define DESC_F_WRITE	2
#define DESC_F_INDIRECT	4
#define DESC_SIZE	16
#define AVAIL_F_NO_INTERRUPT	1
#define MAX_QUEUE_SIZE	32768	/* the split-ring limit, as queue.py */
#define MAX_INDIRECT	MAX_QUEUE_SIZE
#define MAX_SEGS	1024	/* IOV_MAX: one preadv()/pwritev() */
#define HDR_SIZE	16
#define SECTOR		512

#define T_IN		0
#define T_OUT		1
#define T_FLUSH		4

#define S_OK		0
#define S_IOERR		1

/* The copy just made is the one used: the compiler may not fetch again. */
static inline void barrier(void)
{
	__asm__ __volatile__("" ::: "memory");
}

struct vdesc {		/* little-endian, as the host (x86) */
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

struct chain {
	struct iovec rd[MAX_SEGS];
	struct iovec wr[MAX_SEGS];
	int nrd, nwr;
	uint64_t rd_len, wr_len;
};

/* Host address of gpa..gpa+len when one region holds all of it, else NULL. */
static uint8_t *guest_ptr(const struct okvm_region *r, int n, uint64_t gpa,
			  uint64_t len)
{
	int i;

	for (i = 0; i < n; i++) {
		uint64_t off = gpa - r[i].gpa;

		if (gpa >= r[i].gpa && off <= r[i].size &&
		    len <= r[i].size - off)
			return r[i].hva + off;
	}
	return NULL;
}

static int chain_add(struct chain *c, const struct okvm_region *r, int n,
		     const struct vdesc *d)
{
	struct iovec *v;
	uint8_t *p;
	int *cnt;

	if (!d->len)
		return 0;
	p = guest_ptr(r, n, d->addr, d->len);
	if (!p)
		return -1;
	if (d->flags & DESC_F_WRITE) {
		v = c->wr;
		cnt = &c->nwr;
		c->wr_len += d->len;
	} else {
		if (c->nwr)	/* readable after writable */
			return -1;
		v = c->rd;
		cnt = &c->nrd;
		c->rd_len += d->len;
	}
	/* Adjacent buffers (a page-by-page scatter list) become one iovec. */
	if (*cnt && (uint8_t *)v[*cnt - 1].iov_base + v[*cnt - 1].iov_len == p) {
		v[*cnt - 1].iov_len += d->len;
		return 0;
	}
	if (*cnt == MAX_SEGS)
		return -1;
	v[*cnt].iov_base = p;
	v[*cnt].iov_len = d->len;
	(*cnt)++;
	return 0;
}

static int walk_indirect(const struct okvm_vq *q, const struct okvm_region *r,
			 int n, const struct vdesc *ind, struct chain *c)
{
	uint32_t count, i = 0, seen = 0;
	const uint8_t *table;
	struct vdesc d;

	if (!q->indirect || !ind->len || ind->len % DESC_SIZE)
		return -1;
	count = ind->len / DESC_SIZE;
	if (count > MAX_INDIRECT)
		return -1;
	table = guest_ptr(r, n, ind->addr, ind->len);
	if (!table)
		return -1;
	for (;;) {
		if (++seen > count)
			return -1;
		memcpy(&d, table + DESC_SIZE * i, sizeof(d));
		barrier();
		if (d.flags & DESC_F_INDIRECT)
			return -1;
		if (chain_add(c, r, n, &d))
			return -1;
		if (!(d.flags & DESC_F_NEXT))
			return 0;
		if (d.next >= count)
			return -1;
		i = d.next;
	}
}

static int walk(const struct okvm_vq *q, const struct okvm_region *r, int n,
		uint16_t head, struct chain *c)
{
	uint32_t i = head, seen = 0;
	struct vdesc d;

	c->nrd = 0;
	c->nwr = 0;
	c->rd_len = 0;
	c->wr_len = 0;
	if (head >= q->size)
		return -1;
	for (;;) {
		if (++seen > q->size)
			return -1;
		memcpy(&d, q->desc + DESC_SIZE * i, sizeof(d));
		barrier();
		if (d.flags & DESC_F_INDIRECT) {
			if (d.flags & DESC_F_NEXT)
				return -1;
			return walk_indirect(q, r, n, &d, c);
		}
		if (chain_add(c, r, n, &d))
			return -1;
		if (!(d.flags & DESC_F_NEXT))
			return 0;
		if (d.next >= q->size)
			return -1;
		i = d.next;
	}
}

/* Drop the first len bytes of v[0..*cnt); returns the new start. */
static struct iovec *iov_skip(struct iovec *v, int *cnt, uint64_t len)
{
	while (*cnt && len >= v->iov_len) {
		len -= v->iov_len;
		v++;
		(*cnt)--;
	}
	if (*cnt) {
		v->iov_base = (uint8_t *)v->iov_base + len;
		v->iov_len -= len;
	}
	return v;
}

/* preadv()/pwritev() until done; bytes moved (short at EOF), -1 on error. */
static int64_t transfer(int write, int fd, struct iovec *v, int cnt,
			uint64_t off)
{
	uint64_t done = 0;
	ssize_t got;

	while (cnt) {
		got = write ? pwritev(fd, v, cnt, off) : preadv(fd, v, cnt, off);
		if (got < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (!got)
			break;
		done += got;
		off += got;
		v = iov_skip(v, &cnt, got);
	}
	return done;
}

static int range_ok(const struct okvm_blk *b, uint64_t sector, uint64_t len)
{
	return len % SECTOR == 0 && sector <= b->bytes / SECTOR &&
	       len <= b->bytes - sector * SECTOR;
}

/*
 * One request on a walked chain: 0 and *written (bytes written into the
 * chain, status byte included), or -1 before any side effect when Python
 * must serve it.
 */
static int blk_request(const struct okvm_blk *b, struct chain *c,
		       uint32_t *written)
{
	uint8_t hdr[HDR_SIZE], *status_ptr;
	uint64_t sector, data_in, data_out;
	struct iovec *last, *v;
	uint32_t type;
	int64_t done;
	uint8_t status;
	int i, cnt;

	/* Python turns a used length past 32 bits into an internal error. */
	if (c->rd_len < HDR_SIZE || c->wr_len < 1 || c->wr_len > UINT32_MAX)
		return -1;
	for (i = 0, done = 0; done < HDR_SIZE; i++) {
		uint64_t k = c->rd[i].iov_len;

		if (k > (uint64_t)(HDR_SIZE - done))
			k = HDR_SIZE - done;
		memcpy(hdr + done, c->rd[i].iov_base, k);
		done += k;
	}
	barrier();
	memcpy(&type, hdr, sizeof(type));
	memcpy(&sector, hdr + 8, sizeof(sector));
	if (type != T_IN && type != T_OUT && type != T_FLUSH)
		return -1;

	/* The status is the chain's last writable byte; the data comes before it. */
	last = &c->wr[c->nwr - 1];
	status_ptr = (uint8_t *)last->iov_base + last->iov_len - 1;
	data_in = c->wr_len - 1;
	data_out = c->rd_len - HDR_SIZE;
	*written = 0;

	switch (type) {
	case T_IN:
		if (!range_ok(b, sector, data_in)) {
			status = S_IOERR;
			break;
		}
		cnt = c->nwr;
		if (!--last->iov_len)
			cnt--;
		done = transfer(0, b->fd, c->wr, cnt, sector * SECTOR);
		if (done < 0) {
			status = S_IOERR;
			break;
		}
		*written = (uint32_t)done;
		status = (uint64_t)done == data_in ? S_OK : S_IOERR;
		break;
	case T_OUT:
		if (b->readonly || !range_ok(b, sector, data_out)) {
			status = S_IOERR;
			break;
		}
		cnt = c->nrd;
		v = iov_skip(c->rd, &cnt, HDR_SIZE);
		done = transfer(1, b->fd, v, cnt, sector * SECTOR);
		status = (uint64_t)done == data_out ? S_OK : S_IOERR;
		break;
	default:	/* T_FLUSH */
		status = b->readonly || !fsync(b->fd) ? S_OK : S_IOERR;
		break;
	}
	*status_ptr = status;
	*written += 1;
	return 0;
}

static void used_push(struct okvm_vq *q, uint16_t head, uint32_t written)
{
	uint8_t *elem = q->used + 4 + 8 * (q->used_idx & (q->size - 1));
	uint32_t id = head;

	memcpy(elem, &id, sizeof(id));
	memcpy(elem + 4, &written, sizeof(written));
	q->used_idx++;
	/* The element before the index (x86 keeps stores in order). */
	__atomic_store_n((uint16_t *)(q->used + 2), q->used_idx, __ATOMIC_RELEASE);
}

/**
 * okvm_blk_serve() - serve the available chains of a virtio-blk queue
 * @q: the queue; last_avail and used_idx advance for each chain served
 * @regions: guest RAM
 * @nregions: number of @regions
 * @blk: the image
 * @budget: serve at most this many chains
 * @stop: set to why it stopped (enum okvm_stop)
 *
 * Return: the number of chains served and returned to the used ring.
 */
int okvm_blk_serve(struct okvm_vq *q, const struct okvm_region *regions,
		   int nregions, const struct okvm_blk *blk, int budget,
		   int *stop)
{
	struct chain c;
	uint16_t idx, head, pending;
	uint32_t written;
	int served = 0;

	/* queue.py enables only such rings; anything else is not ours to touch. */
	if (!q->size || q->size & (q->size - 1) || q->size > MAX_QUEUE_SIZE) {
		*stop = OKVM_STOP_PYTHON;
		return 0;
	}
	for (;;) {
		if (served >= budget) {
			*stop = OKVM_STOP_BUDGET;
			break;
		}
		idx = __atomic_load_n((uint16_t *)(q->avail + 2), __ATOMIC_ACQUIRE);
		pending = idx - q->last_avail;
		if (!pending) {
			*stop = OKVM_STOP_EMPTY;
			break;
		}
		head = __atomic_load_n((uint16_t *)(q->avail + 4 +
				       2 * (q->last_avail & (q->size - 1))),
				       __ATOMIC_RELAXED);
		if (pending > q->size || walk(q, regions, nregions, head, &c) ||
		    blk_request(blk, &c, &written)) {
			*stop = OKVM_STOP_PYTHON;
			break;
		}
		q->last_avail++;
		used_push(q, head, written);
		served++;
	}
	return served;
}

static uint16_t ring_load(const uint8_t *p)
{
	return __atomic_load_n((const uint16_t *)p, __ATOMIC_ACQUIRE);
}

/* Does the driver want an interrupt for what was just used (virtio 2.7.7, 2.7.10)? */
static int need_interrupt(struct okvm_vq *q)
{
	uint16_t now = q->used_idx, before = q->signalled, used_event;
	int had = q->has_signalled;

	if (!q->event_idx)
		return !(ring_load(q->avail) & AVAIL_F_NO_INTERRUPT);
	/* The used index stored before used_event is read. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	q->signalled = now;
	q->has_signalled = 1;
	if (!had)
		return 1;
	used_event = ring_load(q->avail + 4 + 2 * q->size);
	return (uint16_t)(now - used_event - 1) < (uint16_t)(now - before);
}

/**
 * okvm_blk_kick() - serve a queue kick of a virtio-blk device
 * @q: the queue, as for okvm_blk_serve()
 * @regions: guest RAM
 * @nregions: number of @regions
 * @blk: the image
 * @kick_fd: the queue's kick eventfd, drained first (-1: none)
 * @budget: serve at most this many chains
 * @stop: set to why it stopped (enum okvm_stop)
 * @interrupt: set when the driver wants an interrupt for the chains served
 *	(never with OKVM_STOP_PYTHON)
 *
 * The worker's whole batch in one call: serve, re-arm notifications
 * (avail_event with VIRTIO_F_EVENT_IDX), look at the ring once more and
 * serve what came meanwhile, until it stays empty, a chain is Python's or
 * the budget is spent; then the interrupt decision, unless the batch goes
 * on in Python (OKVM_STOP_PYTHON): that makes it once, for all of it.
 *
 * Return: the number of chains served.
 */
int okvm_blk_kick(struct okvm_vq *q, const struct okvm_region *regions,
		  int nregions, const struct okvm_blk *blk, int kick_fd,
		  int budget, int *stop, int *interrupt)
{
	uint64_t count;
	int served = 0;

	/* Only the ring says what to do: an empty or closed eventfd changes nothing. */
	if (kick_fd >= 0 && read(kick_fd, &count, sizeof(count)) < 0)
		count = 0;
	for (;;) {
		served += okvm_blk_serve(q, regions, nregions, blk,
					 budget - served, stop);
		if (*stop != OKVM_STOP_EMPTY)
			break;
		if (q->event_idx)
			__atomic_store_n((uint16_t *)(q->used + 4 + 8 * q->size),
					 q->last_avail, __ATOMIC_RELAXED);
		/* The avail_event store before the available index load. */
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
		if (ring_load(q->avail + 2) == q->last_avail)
			break;
	}
	/* A chain left to Python: its batch goes on there, and decides once. */
	*interrupt = served && *stop != OKVM_STOP_PYTHON && need_interrupt(q);
	return served;
}
