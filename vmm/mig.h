/* SPDX-License-Identifier: MIT */
/*
 * mig.h - the wire of vmce-vm's live migration (stop and copy, docs/control-protocol.md §8),
 * shared by the source (mig_out.c) and the destination (mig_in.c); implemented in mig_wire.c.
 * Frames are {u32 type, u32 reserved = 0, u64 length} + payload.  Every byte read from the
 * socket is untrusted: frame types and lengths are bounded before anything is allocated.
 */
#ifndef VMM_MIG_H
#define VMM_MIG_H

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <vmce/migrate.h>

#include "vmm.h"

#define MIG_MAGIC	 0x31474d45434d56ull /* "VMCEMG1" */
#define MIG_VERSION	 1
#define MIG_MEM_CHUNK	 (256u << 10) /* bytes of guest memory per MEM frame at most */
#define MIG_MAX_MSRS	 256
#define MIG_MAX_REASON	 512
#define MIG_IO_TIMEOUT_S 20
#define MIG_PAGE	 ((uint64_t)4096)
#define MIG_MAX_HOLES	 256 /* poisoned pages kept out of the memory slots */

enum mig_frame {
	F_HELLO = 1, /* src: magic, version, vCPUs, memory size, profile text */
	F_REPLY,     /* dst: u32 ok, reason text */
	F_MEM,	     /* src: u64 gpa, page data */
	F_MEM_DONE,  /* src: u64 pages sent, u64 pages skipped */
	F_VCPU,	     /* src: struct mig_vcpu, then MSR entries */
	F_VMCE,	     /* src: the vmce state stream (again after a resend) */
	F_COMMIT,    /* src: run the guest */
	F_ABORT,     /* src: the migration is cancelled */
	F_MAX,
};

struct mig_hdr {
	uint32_t type, reserved;
	uint64_t len;
};

struct mig_hello {
	uint64_t magic;
	uint32_t version, nr_vcpus;
	uint64_t mem_size;
	char profile[128];
};

#define VF_XSAVE (1u << 0)
#define VF_XCRS	 (1u << 1)

struct mig_vcpu {
	uint32_t index, flags;
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	struct kvm_fpu fpu;
	uint32_t xsave[1024]; /* struct kvm_xsave's region (its legacy 4 KiB size) */
	struct kvm_xcrs xcrs;
	struct kvm_vcpu_events events;
	struct kvm_debugregs debugregs;
	struct kvm_lapic_state lapic;
	struct kvm_mp_state mp;
	uint32_t nmsrs, pad;
	/* nmsrs struct kvm_msr_entry follow */
};

/* struct kvm_msrs with room for its entries (same layout). */
struct mig_msrs {
	uint32_t nmsrs, pad;
	struct kvm_msr_entry e[MIG_MAX_MSRS];
};

union mig_addr {
	struct sockaddr sa;
	struct sockaddr_un un;
	struct sockaddr_in in;
	struct sockaddr_in6 in6;
};

/* One connection: its socket, the bytes each way and why it failed. */
struct mig_conn {
	int fd;
	uint64_t bytes_out, bytes_in;
	struct vmm_err err;
};

/* "PATH" (a UNIX socket: "unix:PATH", or text with a '/' or without a ':') or "HOST:PORT"
 * with a loopback HOST (127.0.0.0/8, localhost, [::1]).  Other hosts are refused. */
int mig_parse_addr(const char *s, union mig_addr *a, socklen_t *alen, struct vmm_err *err);
/* Send and receive timeouts (MIG_IO_TIMEOUT_S), no Nagle. */
void mig_set_timeouts(int fd);

/* Framing; every failure fills m->err and returns -1. */
int mig_read(struct mig_conn *m, void *p, size_t n);
int mig_send2(struct mig_conn *m, uint32_t type, const void *a, size_t alen, const void *b,
	      size_t blen);
int mig_send(struct mig_conn *m, uint32_t type, const void *p, size_t len);
/* One frame header; its type must be in `allowed` (a mask of 1 << type), its length <= max. */
int mig_recv_hdr(struct mig_conn *m, uint32_t allowed, uint64_t max, struct mig_hdr *h);
int mig_send_reply(struct mig_conn *m, bool ok, const char *reason);
/* A reply frame: 0 when ok, -1 with m->err = the peer's reason (or the transport error). */
int mig_recv_reply(struct mig_conn *m, const char *step);

/* vCPU state.  The MCA MSRs do not travel as MSRs: vmce's stream carries them. */
bool mig_mca_msr(uint32_t index);
int mig_get_vcpu(struct vmm *vm, unsigned i, struct mig_vcpu *v, struct mig_msrs *msrs,
		 struct vmm_err *err);
/* Load a received vCPU state into KVM, in the order that keeps dependencies (registers,
 * extended state, control registers, MSRs, run state, LAPIC, pending events). */
int mig_set_vcpu(struct vmm *vm, const struct mig_vcpu *v, struct mig_msrs *msrs,
		 struct vmm_err *err);

#endif
