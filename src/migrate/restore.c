// SPDX-License-Identifier: MIT
/*
 * Save and restore of a VM's vMCE state, and the compatibility rule between the guest's
 * profile (which travels) and what a destination can back.
 *
 * Restore is all or nothing: the stream is decoded and every value validated into a private
 * image first; the only step that can fail after that (building the new poisoned-page table)
 * runs before anything in the VM changes; the rest cannot fail.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "migrate/migrate_internal.h"
#include "policy/policy_internal.h"

static const struct {
	uint32_t cap;
	const char *name;
} cap_names[] = {
	{VMCE_CAP_SER, "ser"},	 {VMCE_CAP_TES, "tes"},	      {VMCE_CAP_CMCI, "cmci"},
	{VMCE_CAP_LMCE, "lmce"}, {VMCE_CAP_SUCCOR, "succor"}, {VMCE_CAP_CTL, "ctl"},
};

static const char *vendor_name(enum vmce_vendor v)
{
	return v == VMCE_VENDOR_AMD ? "amd" : "intel";
}

int vmce_profile_can_back(const struct vmce_profile *dest, const struct vmce_profile *guest,
			  struct vmce_err *err)
{
	uint32_t missing;

	if (dest->vendor != guest->vendor)
		return vmce__fail(err, -ENOTSUP,
				  "profile.vendor: the guest booted with the %s flavour, the "
				  "destination presents %s (a guest's vendor cannot change)",
				  vendor_name(guest->vendor), vendor_name(dest->vendor));
	missing = guest->caps & ~dest->caps;
	for (size_t i = 0; i < VMCE_ARRAY_SIZE(cap_names); i++)
		if (missing & cap_names[i].cap)
			return vmce__fail(err, -ENOTSUP,
					  "profile.caps: the guest was given '%s', the destination "
					  "cannot back it (level the pool before boot)",
					  cap_names[i].name);
	if (missing)
		return vmce__fail(err, -ENOTSUP, "profile.caps: unknown capability bits 0x%x",
				  missing);
	if (dest->banks < guest->banks)
		return vmce__fail(
			err, -ENOTSUP,
			"profile.banks: the guest booted with %u bank(s), the destination "
			"backs %u (MCG_CAP cannot change under a running guest)",
			guest->banks, dest->banks);
	if (dest->compat_banks < guest->compat_banks)
		return vmce__fail(err, -ENOTSUP,
				  "profile.compat_banks: the guest can read banks up to %u, the "
				  "destination keeps only %u readable",
				  guest->compat_banks - 1, dest->compat_banks - 1);
	return 0;
}

/* ---- snapshot --------------------------------------------------------------------------------- */

size_t vmce__vcpu_queue_snapshot(struct vmce_vcpu *v, struct vmce_queued *out, size_t max)
{
	unsigned n;

	pthread_mutex_lock(&v->qlock);
	n = atomic_load_explicit(&v->qcount, memory_order_relaxed);
	for (unsigned i = 0; i < n && i < max; i++)
		out[i] = v->queue[(v->qhead + i) % VMCE_VCPU_QUEUE_LEN];
	pthread_mutex_unlock(&v->qlock);
	return n;
}

int vmce__mig_snapshot(struct vmce_vm *vm, struct vmce_mig_image *img, struct vmce_err *err)
{
	size_t n = 0, queued = 0;
	int rc;

	memset(img, 0, sizeof(*img));
	img->profile = vm->profile;
	img->nr_vcpus = vm->nr_vcpus;
	/* Queues only shrink while the caller holds inject_lock: this count is an upper bound. */
	for (unsigned i = 0; i < vm->nr_vcpus; i++)
		queued += atomic_load_explicit(&vm->vcpus[i].qcount, memory_order_acquire);
	img->vcpus = malloc(vm->nr_vcpus * sizeof(*img->vcpus));
	img->pending = malloc((queued ? queued : 1) * sizeof(*img->pending));
	if (!img->vcpus || !img->pending)
		goto nomem;
	for (unsigned i = 0; i < vm->nr_vcpus; i++) {
		struct vmce_vcpu *v = &vm->vcpus[i];
		struct vmce_queued q[VMCE_VCPU_QUEUE_LEN];
		size_t nq;

		vmce_vcpu_get_state(v, &img->vcpus[i].st);
		img->vcpus[i].started = vmce_vcpu_started(v);
		nq = vmce__vcpu_queue_snapshot(v, q, VMCE_VCPU_QUEUE_LEN);
		for (size_t k = 0; k < nq && img->nr_pending < queued; k++) {
			img->pending[img->nr_pending].vcpu = i;
			img->pending[img->nr_pending++].q = q[k];
		}
	}
	/* Held records (the caller holds inject_lock, which guards them). */
	{
		struct vmce_hold *h = &vm->hold;
		unsigned nh = atomic_load(&h->count);
		if (nh) {
			img->held = calloc(nh, sizeof(*img->held));
			if (!img->held)
				goto nomem;
		}
		for (unsigned i = 0; i < nh; i++) {
			const struct vmce_held *e = &h->ring[(h->head + i) % h->cap];

			img->held[i].plan = e->plan;
			img->held[i].plan.verdict = VMCE_VERDICT_FORWARD;
			img->held[i].event_seq = e->event_seq;
		}
		img->nr_held = nh;
	}
	rc = vmce__poison_copy(&vm->pol->poison, VMCE_STREAM_MAX_POISON, &img->poison, &n);
	if (rc == -E2BIG) {
		vmce__mig_image_free(img);
		return vmce__fail(
			err, -E2BIG,
			"the poisoned-page set has %zu pages; a stream carries at most %u", n,
			VMCE_STREAM_MAX_POISON);
	}
	if (rc)
		goto nomem;
	img->nr_poison = n;
	img->source_last_seq = vmce_events_last_seq(vm);
	return 0;
nomem:
	vmce__mig_image_free(img);
	return vmce__fail(err, -ENOMEM, "out of memory for a state snapshot");
}

/* ---- save ------------------------------------------------------------------------------------- */

static int save(struct vmce_vm *vm, void *buf, size_t size, void **abuf, size_t *len,
		struct vmce_err *err)
{
	struct vmce_mig_image img;
	size_t need;
	int rc;

	if (!vm || !len)
		return vmce__fail(err, -EINVAL, "vmce_save: vm and len are required");
	pthread_mutex_lock(&vm->inject_lock);
	rc = vmce__mig_snapshot(vm, &img, err);
	if (rc) {
		pthread_mutex_unlock(&vm->inject_lock);
		return rc;
	}
	need = vmce__stream_size(&img);
	*len = need;
	if (abuf) {
		buf = malloc(need);
		if (!buf)
			rc = vmce__fail(err, -ENOMEM, "out of memory for a %zu-byte stream", need);
	} else if (!buf || size < need) {
		rc = vmce__fail(err, -ENOBUFS, "the stream needs %zu bytes, the buffer has %zu",
				need, buf ? size : 0);
	}
	if (!rc) {
		vmce__stream_encode(&img, buf);
		vmce__migrate_note_saved(vm);
		if (abuf)
			*abuf = buf;
	}
	pthread_mutex_unlock(&vm->inject_lock);
	vmce__mig_image_free(&img);
	return rc;
}

int vmce_save(struct vmce_vm *vm, void *buf, size_t size, size_t *len, struct vmce_err *err)
{
	return save(vm, buf, size, NULL, len, err);
}

int vmce_save_alloc(struct vmce_vm *vm, void **buf, size_t *len, struct vmce_err *err)
{
	if (!buf)
		return vmce__fail(err, -EINVAL, "vmce_save_alloc: buf is required");
	*buf = NULL;
	return save(vm, NULL, 0, buf, len, err);
}

/* ---- checks ------------------------------------------------------------------------------------ */

int vmce_stream_profile(const void *stream, size_t len, struct vmce_profile *guest,
			struct vmce_err *err)
{
	struct vmce_mig_image img;
	int rc = vmce__stream_decode(stream, len, &img, err);

	if (rc)
		return rc;
	if (guest)
		*guest = img.profile;
	vmce__mig_image_free(&img);
	return 0;
}

int vmce_restore_check(const struct vmce_profile *dest, const void *stream, size_t len,
		       struct vmce_err *err)
{
	struct vmce_mig_image img;
	struct vmce_err e;
	int rc;

	if (!dest)
		return vmce__fail(err, -EINVAL,
				  "vmce_restore_check: a destination profile is "
				  "required");
	if (vmce_profile_validate(dest, &e))
		return vmce__fail(err, -EINVAL, "destination profile: %s", e.msg);
	rc = vmce__stream_decode(stream, len, &img, err);
	if (rc)
		return rc;
	rc = vmce_profile_can_back(dest, &img.profile, err);
	vmce__mig_image_free(&img);
	return rc;
}

/* ---- restore ----------------------------------------------------------------------------------- */

static void write_vcpu(struct vmce_vcpu *v, const struct vmce_mig_vcpu *src)
{
	vmce__vcpu_store_state(v, &src->st);
	atomic_store(&v->started, src->started);
}

int vmce_restore(struct vmce_vm *vm, const void *stream, size_t len, struct vmce_err *err)
{
	struct vmce_poison_table table;
	struct vmce_mig_image img;
	char reason[160], prof[64];
	int rc;

	if (!vm)
		return vmce__fail(err, -EINVAL, "vmce_restore: vm is required");
	rc = vmce__stream_decode(stream, len, &img, err);
	if (rc)
		return rc;
	rc = vmce_profile_can_back(vmce__migrate_backing(vm), &img.profile, err);
	if (rc)
		goto out;
	if (img.nr_vcpus != vm->nr_vcpus) {
		rc = vmce__fail(err, -ENOTSUP,
				"vcpus.nr_vcpus: the stream has %u vCPU(s), the destination VM %u",
				img.nr_vcpus, vm->nr_vcpus);
		goto out;
	}
	if (img.nr_held > vm->hold.cap) {
		rc = vmce__fail(err, -ENOSPC,
				"held.count: %zu held records, the destination VM holds at most %u",
				img.nr_held, vm->hold.cap);
		goto out;
	}
	if (img.nr_poison > vm->max_poisoned_pages) {
		rc = vmce__fail(err, -ENOSPC,
				"poison.count: %zu pages, the destination VM holds at most %zu",
				img.nr_poison, vm->max_poisoned_pages);
		goto out;
	}

	/* The one allocation: the new poisoned-page table, built before anything changes. */
	if (vmce__poison_table_build(img.poison, img.nr_poison, &table)) {
		rc = vmce__fail(err, -ENOMEM, "out of memory for %zu poisoned pages",
				img.nr_poison);
		goto out;
	}

	/* Commit: nothing below can fail. */
	pthread_mutex_lock(&vm->inject_lock);
	vm->profile = img.profile;
	vm->mcg_cap = vmce_profile_mcg_cap(&img.profile);
	for (unsigned i = 0; i < vm->nr_vcpus; i++) {
		struct vmce_vcpu *v = &vm->vcpus[i];

		write_vcpu(v, &img.vcpus[i]);
		pthread_mutex_lock(&v->qlock);
		v->qhead = 0;
		atomic_store_explicit(&v->qcount, 0, memory_order_relaxed);
		atomic_store_explicit(&v->qmc, 0, memory_order_relaxed);
		/* Held records are released by the first delivery: a settle time long past makes
		 * vmce_vcpu_pending() say so without making the vCPU busy. */
		atomic_store_explicit(&v->release_hint, false, memory_order_relaxed);
		atomic_store_explicit(&v->settle_until, img.nr_held ? 1 : 0, memory_order_relaxed);
		pthread_mutex_unlock(&v->qlock);
	}
	for (size_t i = 0; i < img.nr_pending; i++) {
		struct vmce_vcpu *v = &vm->vcpus[img.pending[i].vcpu];
		unsigned n;

		pthread_mutex_lock(&v->qlock);
		n = atomic_load_explicit(&v->qcount, memory_order_relaxed);
		v->queue[n] = img.pending[i].q;
		if (img.pending[i].q.rec.signal == VMCE_SIGNAL_MC && !img.pending[i].q.shutdown)
			atomic_fetch_add_explicit(&v->qmc, 1, memory_order_relaxed);
		atomic_store_explicit(&v->qcount, n + 1, memory_order_release);
		pthread_mutex_unlock(&v->qlock);
	}
	vmce__poison_replace(&vm->pol->poison, &table);
	/* Held records: the queue is replaced; their wait starts again here.  (The bound was
	 * checked above; the queue cannot shrink while inject_lock is held.) */
	{
		struct vmce_hold *h = &vm->hold;
		struct timespec ts;
		uint64_t now;

		clock_gettime(CLOCK_MONOTONIC, &ts);
		now = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
		h->head = 0;
		h->nsrar = 0;
		for (size_t i = 0; i < img.nr_held && i < h->cap; i++) {
			h->nsrar += img.held[i].plan.cls == VMCE_CLASS_SRAR;
			h->ring[i].plan = img.held[i].plan;
			h->ring[i].event_seq = img.held[i].event_seq;
			h->ring[i].since_ns = now;
		}
		h->progress_ns = now;
		atomic_store(&h->count, (unsigned)img.nr_held);
		atomic_thread_fence(memory_order_seq_cst);
	}
	pthread_mutex_unlock(&vm->inject_lock);

	vmce_profile_format(&img.profile, prof, sizeof(prof));
	snprintf(reason, sizeof(reason),
		 "state restored: profile %s, %u vCPU(s), %zu poisoned page(s), %zu queued "
		 "record(s), %zu held",
		 prof, img.nr_vcpus, img.nr_poison, img.nr_pending, img.nr_held);
	vmce__log_event(vm, VMCE_EVENT_MIGRATION, VMCE_CLASS_AUTO, -1, false, 0, NULL, reason);
out:
	vmce__mig_image_free(&img);
	return rc;
}
