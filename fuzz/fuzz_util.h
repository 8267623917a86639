/* SPDX-License-Identifier: MIT */
/* fuzz_util.h - reading structured values from a fuzzer's input, and failing loudly. */
#ifndef VMCE_FUZZ_UTIL_H
#define VMCE_FUZZ_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct fz {
	const uint8_t *p;
	size_t left;
};

/* n bytes (little-endian) of the input; 0 once it is used up. */
static inline uint64_t fz_bytes(struct fz *f, unsigned n)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < n && f->left; i++, f->left--)
		v |= (uint64_t)*f->p++ << (8 * i);
	return v;
}

static inline uint64_t fz_next(void *f)
{
	return fz_bytes(f, 8);
}

/* A 64-bit value, biased towards the edges that matter (0, all-ones, small, one bit). */
static inline uint64_t fz_value(struct fz *f)
{
	switch (fz_bytes(f, 1) & 7) {
	case 0:
		return 0;
	case 1:
		return ~0ull;
	case 2:
		return fz_bytes(f, 1);
	case 3:
		return 1ull << (fz_bytes(f, 1) & 63);
	default:
		return fz_bytes(f, 8);
	}
}

#define FZ_FAIL(...)                                                                               \
	do {                                                                                       \
		fprintf(stderr, "fuzz invariant violated: " __VA_ARGS__);                          \
		fputc('\n', stderr);                                                               \
		abort();                                                                           \
	} while (0)

#endif
