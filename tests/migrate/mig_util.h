/* SPDX-License-Identifier: MIT */
/*
 * Helpers shared by the migration tests, the fixture generator and the stream benchmark:
 * random profiles and states, state comparison, a text dump of a VM's migratable state and an
 * independent little stream builder (written from docs/migration-format.md, not from the
 * library's encoder).
 */
#ifndef VMCE_TESTS_MIG_UTIL_H
#define VMCE_TESTS_MIG_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <vmce/migrate.h>
#include <vmce/policy.h>

struct mu_rng {
	uint64_t s;
};

uint64_t mu_next(struct mu_rng *r);
uint64_t mu_below(struct mu_rng *r, uint64_t n); /* 0..n-1 */
uint64_t mu_value(struct mu_rng *r);		 /* random 64-bit with edge values mixed in */

void mu_random_profile(struct mu_rng *r, struct vmce_profile *p);
/* The widest profile of a vendor: what a destination that backs everything is created with. */
void mu_ceiling_profile(enum vmce_vendor v, struct vmce_profile *p);

/* Fill a VM with a random state valid for its profile: vCPU registers, started flags,
 * poisoned pages (up to max_poison) and queued records. */
void mu_random_state(struct mu_rng *r, struct vmce_vm *vm, size_t max_poison);

/* Queue one record on a vCPU the way the policy does (returns 0 or -EBUSY). */
int mu_enqueue(struct vmce_vm *vm, unsigned vcpu, int bank, enum vmce_signal sig, uint64_t status,
	       uint64_t addr, uint64_t mcg_status, uint64_t event_seq, const char *reason);

/* Compare the migratable state of two VMs; on a difference, describe it in why. */
bool mu_same_state(struct vmce_vm *a, struct vmce_vm *b, char *why, size_t len);

/* Dump the migratable state as text (deterministic; used by the fixtures).  Returns a malloc'd
 * string. */
char *mu_dump(struct vmce_vm *vm);

/* ---- an independent stream builder ----------------------------------------------------------- */

struct mu_buf {
	uint8_t *p;
	size_t len, cap;
};

void mu_put8(struct mu_buf *b, uint8_t v);
void mu_put16(struct mu_buf *b, uint16_t v);
void mu_put32(struct mu_buf *b, uint32_t v);
void mu_put64(struct mu_buf *b, uint64_t v);
void mu_putn(struct mu_buf *b, const void *p, size_t n);
void mu_buf_free(struct mu_buf *b);

struct mu_section {
	uint16_t id, flags;
	const uint8_t *payload;
	size_t len;
};

/* Assemble header + sections + CRC-32C (total_len and section count computed). */
void mu_build(struct mu_buf *out, uint16_t version, const struct mu_section *secs, size_t n);
/* A stream of a VM in its reset state under profile p (no poison, nothing queued). */
void mu_blank_stream(struct mu_buf *out, const struct vmce_profile *p, unsigned nr_vcpus);
/* Split a stream into its sections (pointers into it); returns the count or -1. */
int mu_split(const uint8_t *s, size_t len, struct mu_section *secs, size_t max);
/* Recompute a stream's CRC in place. */
void mu_fix_crc(uint8_t *s, size_t len);
uint32_t mu_crc32c(const void *p, size_t n);

#include "sim_deliver.h"

#endif
