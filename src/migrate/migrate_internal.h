/* SPDX-License-Identifier: MIT */
/*
 * migrate_internal.h - the state stream's decoded form and the helpers src/migrate/ shares.
 * Only src/migrate/ (and tests) include this.
 */
#ifndef VMCE_MIGRATE_INTERNAL_H
#define VMCE_MIGRATE_INTERNAL_H

#include <vmce/migrate.h>

#include "vmce_internal.h"

/* Section ids of stream version 1 (docs/migration-format.md). */
enum {
	VMCE_SEC_PROFILE = 1,
	VMCE_SEC_VCPUS = 2,
	VMCE_SEC_POISON = 3,
	VMCE_SEC_PENDING = 4,
	VMCE_SEC_HELD = 5,    /* optional: records held until MCIP clears (written when any) */
	VMCE_SEC_WRITER = 16, /* optional: who wrote the stream */
};

#define VMCE_SEC_F_MANDATORY	0x1u

#define VMCE_STREAM_MAGIC	"vmce-mig"
#define VMCE_STREAM_HDR_LEN	24u
#define VMCE_STREAM_SEC_HDR_LEN 8u
#define VMCE_STREAM_TRAILER_LEN 4u

/* Sizes of the fixed parts of version 1. */
#define VMCE_PROFILE_PAYLOAD_LEN 16u
#define VMCE_VCPU_FIXED_LEN	 32u
#define VMCE_BANK_LEN		 40u
#define VMCE_PENDING_FIXED_LEN	 60u
#define VMCE_WRITER_PAYLOAD_LEN	 16u
#define VMCE_HELD_FIXED_LEN	 112u
#define VMCE_HELD_REC_LEN	 40u
#define VMCE_REASON_MAX		 159u

/* vCPU record flags. */
#define VMCE_VCPU_F_AMD_WREN 0x1u
#define VMCE_VCPU_F_STARTED  0x2u
/* Pending record flags. */
#define VMCE_PEND_F_HAS_GPA  0x1u
#define VMCE_PEND_F_SHUTDOWN 0x2u
/* Held record flags. */
#define VMCE_HELD_F_HAS_GPA   0x1u
#define VMCE_HELD_F_BROADCAST 0x2u
#define VMCE_HELD_F_LMCE      0x4u

struct vmce_mig_vcpu {
	struct vmce_vcpu_state st;
	bool started;
};

struct vmce_mig_pending {
	unsigned vcpu;
	struct vmce_queued q;
};

struct vmce_mig_held {
	struct vmce_plan plan; /* verdict FORWARD, nr_vcpus of the image */
	uint64_t event_seq;    /* the source's "held" event */
};

/* A whole decoded (or snapshotted) VM state. */
struct vmce_mig_image {
	struct vmce_profile profile;
	unsigned nr_vcpus;
	struct vmce_mig_vcpu *vcpus; /* nr_vcpus */
	size_t nr_poison;
	uint64_t *poison; /* page addresses, ascending */
	size_t nr_pending;
	struct vmce_mig_pending *pending; /* per vCPU in queue order */
	size_t nr_held;
	struct vmce_mig_held *held; /* release order (section 'held'; none in older streams) */
	bool has_writer;
	unsigned writer_major, writer_minor;
	uint64_t source_last_seq;
};

void vmce__mig_image_free(struct vmce_mig_image *img);

/* CRC-32C (Castagnoli), reflected, init and final xor ~0. */
uint32_t vmce__crc32c(uint32_t crc, const void *buf, size_t len);

/* Decode and validate a stream into img (allocated; free with vmce__mig_image_free).
 * Returns 0, -EINVAL or -EPROTONOSUPPORT with err naming the field. */
int vmce__stream_decode(const void *stream, size_t len, struct vmce_mig_image *img,
			struct vmce_err *err);

/* Size and encoding of an image. */
size_t vmce__stream_size(const struct vmce_mig_image *img);
void vmce__stream_encode(const struct vmce_mig_image *img, uint8_t *out);

/* Values of one vCPU / pending record that a stream may carry under a profile. */
int vmce__check_vcpu_state(const struct vmce_profile *p, unsigned index,
			   const struct vmce_vcpu_state *st, struct vmce_err *err);

/* Snapshot the VM (the caller holds vm->inject_lock).  Returns 0 or -ENOMEM / -E2BIG. */
int vmce__mig_snapshot(struct vmce_vm *vm, struct vmce_mig_image *img, struct vmce_err *err);

/* Copy the records queued on a vCPU, oldest first (at most max; returns how many are queued). */
size_t vmce__vcpu_queue_snapshot(struct vmce_vcpu *v, struct vmce_queued *out, size_t max);

/* Interlock hooks used by save/restore. */
void vmce__migrate_note_saved(struct vmce_vm *vm);
const struct vmce_profile *vmce__migrate_backing(struct vmce_vm *vm);

#endif /* VMCE_MIGRATE_INTERNAL_H */
