// SPDX-License-Identifier: MIT
/*
 * The state stream, version 1: encoding and a decoder that trusts nothing.
 *
 * Layout (all little-endian; docs/migration-format.md is the specification):
 *   header   magic "vmce-mig", u16 version, u16 reserved, u32 total_len, u32 sections,
 *            u32 reserved
 *   sections u16 id, u16 flags (bit 0: mandatory), u32 length, payload
 *   trailer  u32 CRC-32C of everything before it
 *
 * The decoder checks, in order: the header (magic, version, total length against the bytes
 * given, section count), the checksum, the section table (every length inside the stream, no
 * duplicate known section, unknown mandatory sections refused, unknown optional ones skipped),
 * then each known section's counts against its length before it allocates anything, and every
 * value against the profile the stream carries.  Every refusal names the field.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "migrate/migrate_internal.h"

#define MCG_STATUS_BITS                                                                            \
	(VMCE_MCG_STATUS_RIPV | VMCE_MCG_STATUS_EIPV | VMCE_MCG_STATUS_MCIP | VMCE_MCG_STATUS_LMCES)
#define MAX_GPA (1ull << 52)

/* ---- little-endian access ------------------------------------------------------------------- */

static inline uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static inline uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t get64(const uint8_t *p)
{
	return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

static inline uint8_t *put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	return p + 2;
}

static inline uint8_t *put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
	return p + 4;
}

static inline uint8_t *put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
	return p + 8;
}

/* ---- names ---------------------------------------------------------------------------------- */

static const char *section_name(unsigned id)
{
	switch (id) {
	case VMCE_SEC_PROFILE:
		return "profile";
	case VMCE_SEC_VCPUS:
		return "vcpus";
	case VMCE_SEC_POISON:
		return "poison";
	case VMCE_SEC_PENDING:
		return "pending";
	case VMCE_SEC_HELD:
		return "held";
	case VMCE_SEC_WRITER:
		return "writer";
	default:
		return NULL;
	}
}

void vmce__mig_image_free(struct vmce_mig_image *img)
{
	free(img->vcpus);
	free(img->poison);
	free(img->pending);
	free(img->held);
	memset(img, 0, sizeof(*img));
}

/* ---- encoding ------------------------------------------------------------------------------- */

static size_t reason_len(const struct vmce_queued *q)
{
	return strnlen(q->reason, VMCE_REASON_MAX);
}

static size_t pending_payload(const struct vmce_mig_image *img)
{
	size_t n = 8;

	for (size_t i = 0; i < img->nr_pending; i++)
		n += VMCE_PENDING_FIXED_LEN + reason_len(&img->pending[i].q);
	return n;
}

static size_t held_payload(const struct vmce_mig_image *img)
{
	size_t n = 8;

	for (size_t i = 0; i < img->nr_held; i++)
		n += VMCE_HELD_FIXED_LEN + strnlen(img->held[i].plan.reason, VMCE_REASON_MAX);
	return n;
}

size_t vmce__stream_size(const struct vmce_mig_image *img)
{
	size_t n = VMCE_STREAM_HDR_LEN + VMCE_STREAM_TRAILER_LEN;

	n += VMCE_STREAM_SEC_HDR_LEN + VMCE_PROFILE_PAYLOAD_LEN;
	n += VMCE_STREAM_SEC_HDR_LEN + 8 +
	     (size_t)img->nr_vcpus *
		     (VMCE_VCPU_FIXED_LEN + (size_t)img->profile.banks * VMCE_BANK_LEN);
	n += VMCE_STREAM_SEC_HDR_LEN + 8 + img->nr_poison * 8;
	n += VMCE_STREAM_SEC_HDR_LEN + pending_payload(img);
	if (img->nr_held)
		n += VMCE_STREAM_SEC_HDR_LEN + held_payload(img);
	n += VMCE_STREAM_SEC_HDR_LEN + VMCE_WRITER_PAYLOAD_LEN;
	return n;
}

static uint8_t *sec_header(uint8_t *p, unsigned id, unsigned flags, size_t len)
{
	p = put16(p, (uint16_t)id);
	p = put16(p, (uint16_t)flags);
	return put32(p, (uint32_t)len);
}

static uint8_t *put_rec(uint8_t *p, const struct vmce_vcpu_record *r)
{
	*p++ = (uint8_t)r->signal;
	*p++ = r->bank < 0 ? 0xff : (uint8_t)r->bank;
	p = put16(p, 0);
	p = put32(p, 0);
	p = put64(p, r->status);
	p = put64(p, r->addr);
	p = put64(p, r->misc);
	return put64(p, r->mcg_status);
}

static uint8_t *put_held(uint8_t *p, const struct vmce_mig_held *h)
{
	const struct vmce_plan *pl = &h->plan;
	size_t rl = strnlen(pl->reason, VMCE_REASON_MAX);
	struct vmce_vcpu_record none = {.bank = -1};

	p = put32(p, pl->target);
	*p++ = (uint8_t)pl->cls;
	*p++ = (uint8_t)((pl->has_gpa ? VMCE_HELD_F_HAS_GPA : 0) |
			 (pl->broadcast ? VMCE_HELD_F_BROADCAST : 0) |
			 (pl->lmce ? VMCE_HELD_F_LMCE : 0));
	p = put16(p, (uint16_t)rl);
	p = put_rec(p, &pl->record);
	p = put_rec(p, pl->broadcast ? &pl->bystander : &none);
	p = put64(p, pl->has_gpa ? pl->gpa : 0);
	p = put64(p, h->event_seq);
	p = put64(p, 0);
	memcpy(p, pl->reason, rl);
	return p + rl;
}

void vmce__stream_encode(const struct vmce_mig_image *img, uint8_t *out)
{
	const struct vmce_profile *pr = &img->profile;
	size_t total = vmce__stream_size(img);
	uint8_t *p = out;

	memcpy(p, VMCE_STREAM_MAGIC, 8);
	p = put16(p + 8, VMCE_STREAM_VERSION);
	p = put16(p, 0);
	p = put32(p, (uint32_t)total);
	p = put32(p, img->nr_held ? 6 : 5);
	p = put32(p, 0);

	p = sec_header(p, VMCE_SEC_PROFILE, VMCE_SEC_F_MANDATORY, VMCE_PROFILE_PAYLOAD_LEN);
	*p++ = (uint8_t)pr->vendor;
	*p++ = pr->banks;
	*p++ = pr->report_bank;
	*p++ = pr->compat_banks;
	p = put32(p, pr->caps);
	p = put64(p, vmce_profile_mcg_cap(pr));

	p = sec_header(p, VMCE_SEC_VCPUS, VMCE_SEC_F_MANDATORY,
		       8 + (size_t)img->nr_vcpus *
				       (VMCE_VCPU_FIXED_LEN + (size_t)pr->banks * VMCE_BANK_LEN));
	p = put32(p, img->nr_vcpus);
	*p++ = pr->banks;
	*p++ = 0;
	p = put16(p, 0);
	for (unsigned i = 0; i < img->nr_vcpus; i++) {
		const struct vmce_mig_vcpu *v = &img->vcpus[i];
		uint32_t flags = (v->st.amd_mcstatus_wren ? VMCE_VCPU_F_AMD_WREN : 0) |
				 (v->started ? VMCE_VCPU_F_STARTED : 0);

		p = put64(p, v->st.mcg_status);
		p = put64(p, v->st.mcg_ctl);
		p = put64(p, v->st.mcg_ext_ctl);
		p = put32(p, flags);
		p = put32(p, 0);
		for (unsigned b = 0; b < pr->banks; b++) {
			const struct vmce_bank_state *bs = &v->st.bank[b];

			p = put64(p, bs->ctl);
			p = put64(p, bs->status);
			p = put64(p, bs->addr);
			p = put64(p, bs->misc);
			p = put64(p, bs->ctl2);
		}
	}

	p = sec_header(p, VMCE_SEC_POISON, VMCE_SEC_F_MANDATORY, 8 + img->nr_poison * 8);
	p = put32(p, (uint32_t)img->nr_poison);
	p = put32(p, 0);
	for (size_t i = 0; i < img->nr_poison; i++)
		p = put64(p, img->poison[i]);

	p = sec_header(p, VMCE_SEC_PENDING, VMCE_SEC_F_MANDATORY, pending_payload(img));
	p = put32(p, (uint32_t)img->nr_pending);
	p = put32(p, 0);
	for (size_t i = 0; i < img->nr_pending; i++) {
		const struct vmce_queued *q = &img->pending[i].q;
		size_t rl = reason_len(q);

		p = put32(p, img->pending[i].vcpu);
		*p++ = (uint8_t)q->rec.signal;
		*p++ = (uint8_t)q->cls;
		*p++ = (uint8_t)((q->has_gpa ? VMCE_PEND_F_HAS_GPA : 0) |
				 (q->shutdown ? VMCE_PEND_F_SHUTDOWN : 0));
		*p++ = q->rec.bank < 0 ? 0xff : (uint8_t)q->rec.bank;
		p = put64(p, q->rec.status);
		p = put64(p, q->rec.addr);
		p = put64(p, q->rec.misc);
		p = put64(p, q->rec.mcg_status);
		p = put64(p, q->has_gpa ? q->gpa : 0);
		p = put64(p, q->event_seq);
		p = put16(p, (uint16_t)rl);
		p = put16(p, 0);
		memcpy(p, q->reason, rl);
		p += rl;
	}

	/* Optional, and only when something is held: a stream without held records is the same
	 * bytes as before the section existed, and an older reader skips it (losing only the
	 * notifications: the pages are in 'poison', so a guest access still raises SRAR). */
	if (img->nr_held) {
		p = sec_header(p, VMCE_SEC_HELD, 0, held_payload(img));
		p = put32(p, (uint32_t)img->nr_held);
		p = put32(p, 0);
		for (size_t i = 0; i < img->nr_held; i++)
			p = put_held(p, &img->held[i]);
	}

	p = sec_header(p, VMCE_SEC_WRITER, 0, VMCE_WRITER_PAYLOAD_LEN);
	p = put16(p, VMCE_VERSION_MAJOR);
	p = put16(p, VMCE_VERSION_MINOR);
	p = put32(p, 0);
	p = put64(p, img->source_last_seq);

	put32(p, vmce__crc32c(0, out, (size_t)(p - out)));
	(void)total;
}

/* ---- value checks ----------------------------------------------------------------------------- */

static int check_profile(const struct vmce_profile *p, uint64_t mcg_cap, struct vmce_err *err)
{
	struct vmce_err e;

	if (p->vendor != VMCE_VENDOR_INTEL && p->vendor != VMCE_VENDOR_AMD)
		return vmce__fail(err, -EINVAL,
				  "profile.vendor: %u is neither intel (0) nor amd (1)",
				  (unsigned)p->vendor);
	if (p->caps & ~VMCE_CAP_ALL)
		return vmce__fail(
			err, -EPROTONOSUPPORT,
			"profile.caps: capability bits 0x%x are unknown to this vmce "
			"(%d.%d knows 0x%x): the guest uses a capability this host cannot "
			"back",
			p->caps & ~VMCE_CAP_ALL, VMCE_VERSION_MAJOR, VMCE_VERSION_MINOR,
			VMCE_CAP_ALL);
	if (p->banks < 1 || p->banks > VMCE_MAX_BANKS)
		return vmce__fail(err, -EINVAL, "profile.banks: %u is out of range (1 to %d)",
				  p->banks, VMCE_MAX_BANKS);
	if (p->report_bank >= p->banks)
		return vmce__fail(err, -EINVAL,
				  "profile.report_bank: %u is not a bank of a %u-bank profile",
				  p->report_bank, p->banks);
	if (p->compat_banks < p->banks || p->compat_banks > VMCE_MAX_BANKS)
		return vmce__fail(err, -EINVAL,
				  "profile.compat_banks: %u must be between banks (%u) and %d",
				  p->compat_banks, p->banks, VMCE_MAX_BANKS);
	if (vmce_profile_validate(p, &e))
		return vmce__fail(err, -EINVAL, "profile.caps: %s", e.msg);
	if (mcg_cap != vmce_profile_mcg_cap(p))
		return vmce__fail(err, -EINVAL,
				  "profile.mcg_cap: 0x%" PRIx64
				  " does not match the profile's 0x%" PRIx64,
				  mcg_cap, vmce_profile_mcg_cap(p));
	return 0;
}

int vmce__check_vcpu_state(const struct vmce_profile *p, unsigned i,
			   const struct vmce_vcpu_state *st, struct vmce_err *err)
{
	if (!(p->caps & VMCE_CAP_CTL) && st->mcg_ctl)
		return vmce__fail(err, -EINVAL,
				  "vcpus[%u].mcg_ctl: 0x%" PRIx64 " but the profile has no ctl", i,
				  st->mcg_ctl);
	if (!(p->caps & VMCE_CAP_LMCE) && st->mcg_ext_ctl)
		return vmce__fail(err, -EINVAL,
				  "vcpus[%u].mcg_ext_ctl: 0x%" PRIx64
				  " but the profile has no lmce",
				  i, st->mcg_ext_ctl);
	if (st->amd_mcstatus_wren && p->vendor != VMCE_VENDOR_AMD)
		return vmce__fail(err, -EINVAL,
				  "vcpus[%u].flags: amd_mcstatus_wren is set on an intel profile",
				  i);
	for (unsigned b = 0; b < p->banks; b++)
		if (!(p->caps & VMCE_CAP_CMCI) && st->bank[b].ctl2)
			return vmce__fail(err, -EINVAL,
					  "vcpus[%u].bank[%u].ctl2: 0x%" PRIx64
					  " but the profile has no cmci",
					  i, b, st->bank[b].ctl2);
	for (unsigned b = p->banks; b < VMCE_MAX_BANKS; b++) {
		const struct vmce_bank_state *bs = &st->bank[b];

		if (bs->ctl || bs->status || bs->addr || bs->misc || bs->ctl2)
			return vmce__fail(err, -EINVAL,
					  "vcpus[%u].bank[%u]: has state but the profile has %u "
					  "bank(s)",
					  i, b, p->banks);
	}
	return 0;
}

static bool printable(const uint8_t *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] < 0x20 || s[i] > 0x7e)
			return false;
	return true;
}

/* ---- decoding --------------------------------------------------------------------------------- */

struct sec_ref {
	const uint8_t *p;
	size_t len, off;
	unsigned flags;
	bool present;
};

/* The head of section `name` that counts its entries: count (at most max), then a reserved
 * word that must be 0. */
static int counted_head(const struct sec_ref *s, const char *name, uint32_t max, uint32_t *n,
			struct vmce_err *err)
{
	if (s->len < 8)
		return vmce__fail(err, -EINVAL, "section '%s'.length: %zu, needs at least 8", name,
				  s->len);
	*n = get32(s->p);
	if (*n > max)
		return vmce__fail(err, -EINVAL, "%s.count: %" PRIu32 " exceeds the bound %u", name,
				  *n, max);
	if (get32(s->p + 4))
		return vmce__fail(err, -EINVAL, "%s.reserved: must be 0", name);
	return 0;
}

/* Record i's reason text in section `name`: rl printable bytes at *p, before end, into dst
 * (VMCE_REASON_MAX + 1 bytes); *p moves past them. */
static int get_reason(const uint8_t **p, const uint8_t *end, const char *name, uint32_t i,
		      unsigned rl, char *dst, struct vmce_err *err)
{
	if (rl > VMCE_REASON_MAX)
		return vmce__fail(err, -EINVAL, "%s[%" PRIu32 "].reason_len: %u exceeds %u", name,
				  i, rl, VMCE_REASON_MAX);
	if ((size_t)(end - *p) < rl)
		return vmce__fail(err, -EINVAL,
				  "%s[%" PRIu32 "].reason: %u bytes run past the section end", name,
				  i, rl);
	if (!printable(*p, rl))
		return vmce__fail(err, -EINVAL, "%s[%" PRIu32 "].reason: not printable ASCII", name,
				  i);
	memcpy(dst, *p, rl);
	dst[rl] = '\0';
	*p += rl;
	return 0;
}

static int decode_profile(const struct sec_ref *s, struct vmce_mig_image *img, struct vmce_err *err)
{
	const uint8_t *p = s->p;

	if (s->len != VMCE_PROFILE_PAYLOAD_LEN)
		return vmce__fail(err, -EINVAL, "section 'profile'.length: %zu, expected %u",
				  s->len, VMCE_PROFILE_PAYLOAD_LEN);
	img->profile.vendor = (enum vmce_vendor)p[0];
	img->profile.banks = p[1];
	img->profile.report_bank = p[2];
	img->profile.compat_banks = p[3];
	img->profile.caps = get32(p + 4);
	return check_profile(&img->profile, get64(p + 8), err);
}

static int decode_vcpus(const struct sec_ref *s, struct vmce_mig_image *img, struct vmce_err *err)
{
	const struct vmce_profile *pr = &img->profile;
	const uint8_t *p = s->p;
	size_t rec_len = VMCE_VCPU_FIXED_LEN + (size_t)pr->banks * VMCE_BANK_LEN;
	uint32_t n;
	int rc;

	if (s->len < 8)
		return vmce__fail(err, -EINVAL, "section 'vcpus'.length: %zu, needs at least 8",
				  s->len);
	n = get32(p);
	if (n < 1 || n > VMCE_MAX_VCPUS)
		return vmce__fail(err, -EINVAL,
				  "vcpus.nr_vcpus: %" PRIu32 " is out of range (1 to %d)", n,
				  VMCE_MAX_VCPUS);
	if (p[4] != pr->banks)
		return vmce__fail(err, -EINVAL, "vcpus.banks: %u but the profile has %u bank(s)",
				  p[4], pr->banks);
	if (p[5] || get16(p + 6))
		return vmce__fail(err, -EINVAL, "vcpus.reserved: must be 0");
	if (s->len != 8 + (size_t)n * rec_len)
		return vmce__fail(err, -EINVAL,
				  "section 'vcpus'.length: %zu, but %" PRIu32
				  " vCPUs of %u bank(s) need %zu",
				  s->len, n, pr->banks, 8 + (size_t)n * rec_len);
	img->vcpus = calloc(n, sizeof(*img->vcpus));
	if (!img->vcpus)
		return vmce__fail(err, -ENOMEM, "out of memory for %" PRIu32 " vCPU states", n);
	img->nr_vcpus = n;
	p += 8;
	for (unsigned i = 0; i < n; i++, p += rec_len) {
		struct vmce_mig_vcpu *v = &img->vcpus[i];
		uint32_t flags = get32(p + 24);

		v->st.mcg_status = get64(p);
		v->st.mcg_ctl = get64(p + 8);
		v->st.mcg_ext_ctl = get64(p + 16);
		if (flags & ~(VMCE_VCPU_F_AMD_WREN | VMCE_VCPU_F_STARTED))
			return vmce__fail(err, -EINVAL, "vcpus[%u].flags: unknown bits 0x%" PRIx32,
					  i, flags & ~(VMCE_VCPU_F_AMD_WREN | VMCE_VCPU_F_STARTED));
		if (get32(p + 28))
			return vmce__fail(err, -EINVAL, "vcpus[%u].reserved: must be 0", i);
		v->st.amd_mcstatus_wren = flags & VMCE_VCPU_F_AMD_WREN;
		v->started = flags & VMCE_VCPU_F_STARTED;
		for (unsigned b = 0; b < pr->banks; b++) {
			const uint8_t *q = p + VMCE_VCPU_FIXED_LEN + b * VMCE_BANK_LEN;

			v->st.bank[b].ctl = get64(q);
			v->st.bank[b].status = get64(q + 8);
			v->st.bank[b].addr = get64(q + 16);
			v->st.bank[b].misc = get64(q + 24);
			v->st.bank[b].ctl2 = get64(q + 32);
		}
		rc = vmce__check_vcpu_state(pr, i, &v->st, err);
		if (rc)
			return rc;
	}
	return 0;
}

static int decode_poison(const struct sec_ref *s, struct vmce_mig_image *img, struct vmce_err *err)
{
	const uint8_t *p = s->p;
	uint32_t n;
	int rc;

	rc = counted_head(s, "poison", VMCE_STREAM_MAX_POISON, &n, err);
	if (rc)
		return rc;
	if (s->len != 8 + (size_t)n * 8)
		return vmce__fail(err, -EINVAL,
				  "section 'poison'.length: %zu, but %" PRIu32 " pages need %zu",
				  s->len, n, 8 + (size_t)n * 8);
	if (n) {
		img->poison = malloc((size_t)n * sizeof(*img->poison));
		if (!img->poison)
			return vmce__fail(err, -ENOMEM, "out of memory for %" PRIu32 " pages", n);
	}
	img->nr_poison = n;
	for (uint32_t i = 0; i < n; i++) {
		uint64_t gpa = get64(p + 8 + 8 * (size_t)i);

		if (gpa & 0xfff)
			return vmce__fail(err, -EINVAL,
					  "poison[%" PRIu32 "]: 0x%" PRIx64 " is not page-aligned",
					  i, gpa);
		if (gpa >= MAX_GPA)
			return vmce__fail(err, -EINVAL,
					  "poison[%" PRIu32 "]: 0x%" PRIx64
					  " is beyond the 52-bit physical address space",
					  i, gpa);
		if (i && gpa <= img->poison[i - 1])
			return vmce__fail(err, -EINVAL,
					  "poison[%" PRIu32 "]: 0x%" PRIx64
					  " is not above poison[%" PRIu32 "] 0x%" PRIx64
					  " (pages are ascending and distinct)",
					  i, gpa, i - 1, img->poison[i - 1]);
		img->poison[i] = gpa;
	}
	return 0;
}

static int check_pending(const struct vmce_profile *pr, size_t i, unsigned nr_vcpus,
			 const struct vmce_mig_pending *pe, unsigned flags, struct vmce_err *err)
{
	const struct vmce_queued *q = &pe->q;

	if (pe->vcpu >= nr_vcpus)
		return vmce__fail(err, -EINVAL, "pending[%zu].vcpu: %u but the VM has %u vCPU(s)",
				  i, pe->vcpu, nr_vcpus);
	if ((unsigned)q->rec.signal > VMCE_SIGNAL_CMCI)
		return vmce__fail(err, -EINVAL, "pending[%zu].signal: %u is not none, mc or cmci",
				  i, (unsigned)q->rec.signal);
	if ((unsigned)q->cls > VMCE_CLASS_FATAL)
		return vmce__fail(err, -EINVAL, "pending[%zu].class: %u is not an error class", i,
				  (unsigned)q->cls);
	if (flags & ~(VMCE_PEND_F_HAS_GPA | VMCE_PEND_F_SHUTDOWN))
		return vmce__fail(err, -EINVAL, "pending[%zu].flags: unknown bits 0x%x", i,
				  flags & ~(VMCE_PEND_F_HAS_GPA | VMCE_PEND_F_SHUTDOWN));
	if (q->rec.bank >= (int)pr->banks)
		return vmce__fail(err, -EINVAL,
				  "pending[%zu].bank: %d but the profile has %u bank(s)", i,
				  q->rec.bank, pr->banks);
	if (q->rec.bank < 0 && !q->shutdown && q->rec.signal != VMCE_SIGNAL_MC)
		return vmce__fail(err, -EINVAL,
				  "pending[%zu].bank: none, but only a machine check (a broadcast "
				  "bystander) or a shutdown may come without a bank",
				  i);
	if (q->rec.signal == VMCE_SIGNAL_CMCI && !(pr->caps & VMCE_CAP_CMCI))
		return vmce__fail(err, -EINVAL,
				  "pending[%zu].signal: cmci but the profile has no cmci", i);
	if (q->rec.mcg_status & ~MCG_STATUS_BITS)
		return vmce__fail(err, -EINVAL,
				  "pending[%zu].mcg_status: 0x%" PRIx64
				  " has bits beyond RIPV, EIPV, "
				  "MCIP and LMCES",
				  i, q->rec.mcg_status);
	if (!q->has_gpa && q->gpa)
		return vmce__fail(err, -EINVAL,
				  "pending[%zu].gpa: 0x%" PRIx64 " but the record has no address",
				  i, q->gpa);
	return 0;
}

static int decode_pending(const struct sec_ref *s, struct vmce_mig_image *img, struct vmce_err *err)
{
	const uint8_t *p = s->p, *end = s->p + s->len;
	unsigned per_vcpu[VMCE_MAX_VCPUS];
	uint32_t n;
	int rc;

	if (s->len < 8)
		return vmce__fail(err, -EINVAL, "section 'pending'.length: %zu, needs at least 8",
				  s->len);
	n = get32(p);
	if (n > (uint64_t)img->nr_vcpus * VMCE_VCPU_QUEUE_LEN)
		return vmce__fail(err, -EINVAL,
				  "pending.count: %" PRIu32
				  " exceeds %u vCPU(s) x %d queued records",
				  n, img->nr_vcpus, VMCE_VCPU_QUEUE_LEN);
	if (get32(p + 4))
		return vmce__fail(err, -EINVAL, "pending.reserved: must be 0");
	if (s->len < 8 + (size_t)n * VMCE_PENDING_FIXED_LEN)
		return vmce__fail(err, -EINVAL,
				  "section 'pending'.length: %zu, too short for %" PRIu32
				  " records",
				  s->len, n);
	if (n) {
		img->pending = calloc(n, sizeof(*img->pending));
		if (!img->pending)
			return vmce__fail(err, -ENOMEM, "out of memory for %" PRIu32 " records", n);
	}
	memset(per_vcpu, 0, sizeof(per_vcpu));
	p += 8;
	for (uint32_t i = 0; i < n; i++) {
		struct vmce_mig_pending *pe = &img->pending[i];
		struct vmce_queued *q = &pe->q;
		unsigned flags, rl;

		if ((size_t)(end - p) < VMCE_PENDING_FIXED_LEN)
			return vmce__fail(err, -EINVAL,
					  "pending[%" PRIu32
					  "]: truncated (section 'pending'.length %zu)",
					  i, s->len);
		pe->vcpu = get32(p);
		q->rec.signal = (enum vmce_signal)p[4];
		q->cls = (enum vmce_class)p[5];
		flags = p[6];
		q->rec.bank = p[7] == 0xff ? -1 : p[7];
		q->rec.status = get64(p + 8);
		q->rec.addr = get64(p + 16);
		q->rec.misc = get64(p + 24);
		q->rec.mcg_status = get64(p + 32);
		q->gpa = get64(p + 40);
		q->event_seq = get64(p + 48);
		rl = get16(p + 56);
		q->has_gpa = flags & VMCE_PEND_F_HAS_GPA;
		q->shutdown = flags & VMCE_PEND_F_SHUTDOWN;
		if (get16(p + 58))
			return vmce__fail(err, -EINVAL, "pending[%" PRIu32 "].reserved: must be 0",
					  i);
		p += VMCE_PENDING_FIXED_LEN;
		rc = get_reason(&p, end, "pending", i, rl, q->reason, err);
		if (!rc)
			rc = check_pending(&img->profile, i, img->nr_vcpus, pe, flags, err);
		if (rc)
			return rc;
		if (++per_vcpu[pe->vcpu] > VMCE_VCPU_QUEUE_LEN)
			return vmce__fail(err, -EINVAL,
					  "pending[%" PRIu32
					  "].vcpu: more than %d records for vCPU %u",
					  i, VMCE_VCPU_QUEUE_LEN, pe->vcpu);
		img->nr_pending = i + 1;
	}
	if (p != end)
		return vmce__fail(err, -EINVAL,
				  "section 'pending'.length: %zu, but the records end after %zu",
				  s->len, (size_t)(p - s->p));
	return 0;
}

/* One 40-byte record of a held plan; which: "record" or "bystander". */
static int get_rec(const uint8_t *p, size_t i, const char *which, const struct vmce_profile *pr,
		   struct vmce_vcpu_record *r, struct vmce_err *err)
{
	r->signal = (enum vmce_signal)p[0];
	r->bank = p[1] == 0xff ? -1 : p[1];
	r->status = get64(p + 8);
	r->addr = get64(p + 16);
	r->misc = get64(p + 24);
	r->mcg_status = get64(p + 32);
	if (get16(p + 2) || get32(p + 4))
		return vmce__fail(err, -EINVAL, "held[%zu].%s.reserved: must be 0", i, which);
	if ((unsigned)r->signal > VMCE_SIGNAL_CMCI)
		return vmce__fail(err, -EINVAL, "held[%zu].%s.signal: %u is not none, mc or cmci",
				  i, which, (unsigned)r->signal);
	if (r->bank >= (int)pr->banks)
		return vmce__fail(err, -EINVAL,
				  "held[%zu].%s.bank: %d but the profile has %u bank(s)", i, which,
				  r->bank, pr->banks);
	if (r->mcg_status & ~MCG_STATUS_BITS)
		return vmce__fail(err, -EINVAL,
				  "held[%zu].%s.mcg_status: 0x%" PRIx64
				  " has bits beyond RIPV, EIPV, MCIP and LMCES",
				  i, which, r->mcg_status);
	return 0;
}

static int check_held(const struct vmce_mig_image *img, size_t i, const struct vmce_mig_held *h,
		      unsigned flags, struct vmce_err *err)
{
	const struct vmce_plan *pl = &h->plan;
	const struct vmce_vcpu_record *b = &pl->bystander;

	if (pl->target >= img->nr_vcpus)
		return vmce__fail(err, -EINVAL, "held[%zu].target: %u but the VM has %u vCPU(s)", i,
				  pl->target, img->nr_vcpus);
	if (pl->cls != VMCE_CLASS_SRAO && pl->cls != VMCE_CLASS_SRAR)
		return vmce__fail(err, -EINVAL,
				  "held[%zu].class: %u; only srao (3) and srar (4) are held", i,
				  (unsigned)pl->cls);
	if (flags & ~(VMCE_HELD_F_HAS_GPA | VMCE_HELD_F_BROADCAST | VMCE_HELD_F_LMCE))
		return vmce__fail(
			err, -EINVAL, "held[%zu].flags: unknown bits 0x%x", i,
			flags & ~(VMCE_HELD_F_HAS_GPA | VMCE_HELD_F_BROADCAST | VMCE_HELD_F_LMCE));
	if (pl->record.signal != VMCE_SIGNAL_MC)
		return vmce__fail(err, -EINVAL,
				  "held[%zu].record.signal: %u; a held record is a machine check",
				  i, (unsigned)pl->record.signal);
	if (pl->record.bank < 0)
		return vmce__fail(err, -EINVAL,
				  "held[%zu].record.bank: none; the target's record "
				  "needs a bank",
				  i);
	if (!pl->broadcast &&
	    (b->signal || b->bank != -1 || b->status || b->addr || b->misc || b->mcg_status))
		return vmce__fail(err, -EINVAL,
				  "held[%zu].bystander: must be empty (signal 0, bank 0xff, 0) "
				  "without the broadcast flag",
				  i);
	if (pl->broadcast && b->signal != VMCE_SIGNAL_MC)
		return vmce__fail(err, -EINVAL,
				  "held[%zu].bystander.signal: %u; a broadcast bystander gets a "
				  "machine check",
				  i, (unsigned)b->signal);
	if (pl->broadcast && pl->lmce)
		return vmce__fail(err, -EINVAL,
				  "held[%zu].flags: broadcast and lmce exclude each other", i);
	if (!pl->has_gpa && pl->gpa)
		return vmce__fail(err, -EINVAL,
				  "held[%zu].gpa: 0x%" PRIx64 " but the record has no address", i,
				  pl->gpa);
	if (pl->has_gpa && pl->gpa >= MAX_GPA)
		return vmce__fail(err, -EINVAL,
				  "held[%zu].gpa: 0x%" PRIx64
				  " is beyond the 52-bit physical address space",
				  i, pl->gpa);
	return 0;
}

static int decode_held(const struct sec_ref *s, struct vmce_mig_image *img, struct vmce_err *err)
{
	const uint8_t *p = s->p, *end = s->p + s->len;
	uint32_t n;
	int rc;

	rc = counted_head(s, "held", VMCE_HOLD_MAX_RECORDS, &n, err);
	if (rc)
		return rc;
	if ((s->len - 8) / VMCE_HELD_FIXED_LEN < n)
		return vmce__fail(err, -EINVAL,
				  "section 'held'.length: %zu, too short for %" PRIu32 " records",
				  s->len, n);
	if (n) {
		img->held = calloc(n, sizeof(*img->held));
		if (!img->held)
			return vmce__fail(err, -ENOMEM,
					  "out of memory for %" PRIu32 " held records", n);
	}
	p += 8;
	for (uint32_t i = 0; i < n; i++) {
		struct vmce_mig_held *h = &img->held[i];
		struct vmce_plan *pl = &h->plan;
		unsigned flags, rl;

		if ((size_t)(end - p) < VMCE_HELD_FIXED_LEN)
			return vmce__fail(err, -EINVAL,
					  "held[%" PRIu32
					  "]: truncated (section 'held'.length %zu)",
					  i, s->len);
		pl->verdict = VMCE_VERDICT_FORWARD;
		pl->nr_vcpus = img->nr_vcpus;
		pl->target = get32(p);
		pl->cls = (enum vmce_class)p[4];
		flags = p[5];
		rl = get16(p + 6);
		pl->has_gpa = flags & VMCE_HELD_F_HAS_GPA;
		pl->broadcast = flags & VMCE_HELD_F_BROADCAST;
		pl->lmce = flags & VMCE_HELD_F_LMCE;
		rc = get_rec(p + 8, i, "record", &img->profile, &pl->record, err);
		if (!rc)
			rc = get_rec(p + 8 + VMCE_HELD_REC_LEN, i, "bystander", &img->profile,
				     &pl->bystander, err);
		if (rc)
			return rc;
		pl->gpa = get64(p + 88);
		h->event_seq = get64(p + 96);
		if (get64(p + 104))
			return vmce__fail(err, -EINVAL, "held[%" PRIu32 "].reserved: must be 0", i);
		p += VMCE_HELD_FIXED_LEN;
		rc = get_reason(&p, end, "held", i, rl, pl->reason, err);
		if (rc)
			return rc;
		img->nr_held = i + 1;
		rc = check_held(img, i, h, flags, err);
		if (rc)
			return rc;
	}
	if (p != end)
		return vmce__fail(err, -EINVAL,
				  "section 'held'.length: %zu, but the records end after %zu",
				  s->len, (size_t)(p - s->p));
	return 0;
}

static int decode_writer(const struct sec_ref *s, struct vmce_mig_image *img, struct vmce_err *err)
{
	if (s->len != VMCE_WRITER_PAYLOAD_LEN)
		return vmce__fail(err, -EINVAL, "section 'writer'.length: %zu, expected %u", s->len,
				  VMCE_WRITER_PAYLOAD_LEN);
	if (get32(s->p + 4))
		return vmce__fail(err, -EINVAL, "writer.reserved: must be 0");
	img->has_writer = true;
	img->writer_major = get16(s->p);
	img->writer_minor = get16(s->p + 2);
	img->source_last_seq = get64(s->p + 8);
	return 0;
}

/* The header and the trailer: *total the stream's length, *nsec its number of sections. */
static int decode_header(const uint8_t *b, size_t len, uint32_t *total_out, uint32_t *nsec_out,
			 struct vmce_err *err)
{
	uint32_t total, nsec, crc, want;
	unsigned version;

	if (len < 8)
		return vmce__fail(
			err, -EINVAL,
			"header.magic: the stream is %zu byte(s), too short for the magic", len);
	if (memcmp(b, VMCE_STREAM_MAGIC, 8))
		return vmce__fail(
			err, -EINVAL,
			"header.magic: not a vmce state stream (starts %02x %02x %02x %02x, "
			"expected \"%s\")",
			b[0], b[1], b[2], b[3], VMCE_STREAM_MAGIC);
	if (len < 10)
		return vmce__fail(err, -EINVAL, "header.version: truncated (%zu bytes)", len);
	version = get16(b + 8);
	if (version == 0)
		return vmce__fail(err, -EINVAL, "header.version: 0 is not a stream version");
	if (version > VMCE_STREAM_VERSION)
		return vmce__fail(err, -EPROTONOSUPPORT,
				  "header.version: %u is newer than this reader (reads 1 to %d)",
				  version, VMCE_STREAM_VERSION);
	if (len < VMCE_STREAM_HDR_LEN)
		return vmce__fail(err, -EINVAL,
				  "header.total_len: the stream is %zu bytes, shorter than the "
				  "%u-byte header",
				  len, VMCE_STREAM_HDR_LEN);
	if (get16(b + 10))
		return vmce__fail(err, -EINVAL, "header.reserved: 0x%x must be 0", get16(b + 10));
	total = get32(b + 12);
	if (total > VMCE_STREAM_MAX_LEN)
		return vmce__fail(err, -EINVAL,
				  "header.total_len: %" PRIu32 " exceeds the bound %u", total,
				  VMCE_STREAM_MAX_LEN);
	if (total < VMCE_STREAM_HDR_LEN + VMCE_STREAM_TRAILER_LEN)
		return vmce__fail(err, -EINVAL,
				  "header.total_len: %" PRIu32 " is too small (at least %u)", total,
				  VMCE_STREAM_HDR_LEN + VMCE_STREAM_TRAILER_LEN);
	if (total > len)
		return vmce__fail(err, -EINVAL,
				  "header.total_len: %" PRIu32 " but only %zu bytes were given "
				  "(truncated stream)",
				  total, len);
	if (total < len)
		return vmce__fail(err, -EINVAL,
				  "header.total_len: %" PRIu32
				  " but %zu bytes were given (trailing "
				  "data)",
				  total, len);
	nsec = get32(b + 16);
	if (nsec > VMCE_STREAM_MAX_SECTION)
		return vmce__fail(err, -EINVAL, "header.sections: %" PRIu32 " exceeds the bound %d",
				  nsec, VMCE_STREAM_MAX_SECTION);
	if (get32(b + 20))
		return vmce__fail(err, -EINVAL, "header.reserved2: 0x%" PRIx32 " must be 0",
				  get32(b + 20));
	crc = get32(b + total - VMCE_STREAM_TRAILER_LEN);
	want = vmce__crc32c(0, b, total - VMCE_STREAM_TRAILER_LEN);
	if (crc != want)
		return vmce__fail(err, -EINVAL,
				  "trailer.crc32c: 0x%08" PRIx32
				  " but the content sums to 0x%08" PRIx32 " (corrupted stream)",
				  crc, want);

	*total_out = total;
	*nsec_out = nsec;
	return 0;
}

/* The section table: where each known section is (secs), optional unknown ones skipped. */
static int find_sections(const uint8_t *b, uint32_t total, uint32_t nsec, struct sec_ref *secs,
			 struct vmce_err *err)
{
	size_t off = VMCE_STREAM_HDR_LEN;

	for (uint32_t i = 0; i < nsec; i++) {
		size_t end = total - VMCE_STREAM_TRAILER_LEN;
		unsigned id, flags;
		uint32_t slen;
		const char *name;

		if (end - off < VMCE_STREAM_SEC_HDR_LEN)
			return vmce__fail(err, -EINVAL,
					  "section[%" PRIu32
					  "]: header at offset %zu runs past the end "
					  "(header.sections says %" PRIu32 ")",
					  i, off, nsec);
		id = get16(b + off);
		flags = get16(b + off + 2);
		slen = get32(b + off + 4);
		if (slen > end - off - VMCE_STREAM_SEC_HDR_LEN)
			return vmce__fail(err, -EINVAL,
					  "section[%" PRIu32 "].length: %" PRIu32
					  " at offset %zu runs "
					  "past the end (%zu bytes left)",
					  i, slen, off, end - off - VMCE_STREAM_SEC_HDR_LEN);
		if (flags & ~VMCE_SEC_F_MANDATORY)
			return vmce__fail(err, -EINVAL,
					  "section[%" PRIu32 "].flags: unknown bits 0x%x (id %u)",
					  i, flags & ~VMCE_SEC_F_MANDATORY, id);
		name = section_name(id);
		if (!name) {
			if (flags & VMCE_SEC_F_MANDATORY)
				return vmce__fail(err, -EPROTONOSUPPORT,
						  "section[%" PRIu32
						  "].id: %u (at offset %zu) is mandatory "
						  "and unknown to this reader (stream version %d)",
						  i, id, off, VMCE_STREAM_VERSION);
			/* An optional section from a newer writer: skipped. */
		} else {
			bool mandatory = id != VMCE_SEC_WRITER && id != VMCE_SEC_HELD;

			if (secs[id].present)
				return vmce__fail(err, -EINVAL,
						  "section[%" PRIu32
						  "].id: section '%s' (id %u) appears "
						  "twice",
						  i, name, id);
			if (!!(flags & VMCE_SEC_F_MANDATORY) != mandatory)
				return vmce__fail(err, -EINVAL,
						  "section '%s'.flags: 0x%x, it must be %s", name,
						  flags,
						  mandatory ? "mandatory (0x1)" : "optional (0x0)");
			secs[id].present = true;
			secs[id].p = b + off + VMCE_STREAM_SEC_HDR_LEN;
			secs[id].len = slen;
			secs[id].off = off;
			secs[id].flags = flags;
		}
		off += VMCE_STREAM_SEC_HDR_LEN + slen;
	}
	if (off != total - VMCE_STREAM_TRAILER_LEN)
		return vmce__fail(err, -EINVAL,
				  "header.sections: %" PRIu32
				  " sections end at offset %zu, but the "
				  "trailer is at %zu",
				  nsec, off, (size_t)(total - VMCE_STREAM_TRAILER_LEN));
	return 0;
}

static int decode(const uint8_t *b, size_t len, struct vmce_mig_image *img, struct vmce_err *err)
{
	struct sec_ref secs[VMCE_SEC_WRITER + 1];
	uint32_t total = 0, nsec = 0;
	int rc;

	memset(secs, 0, sizeof(secs));
	rc = decode_header(b, len, &total, &nsec, err);
	if (!rc)
		rc = find_sections(b, total, nsec, secs, err);
	if (rc)
		return rc;
	for (unsigned id = VMCE_SEC_PROFILE; id <= VMCE_SEC_PENDING; id++)
		if (!secs[id].present)
			return vmce__fail(err, -EINVAL, "section '%s' (id %u) is missing",
					  section_name(id), id);

	rc = decode_profile(&secs[VMCE_SEC_PROFILE], img, err);
	if (!rc)
		rc = decode_vcpus(&secs[VMCE_SEC_VCPUS], img, err);
	if (!rc)
		rc = decode_poison(&secs[VMCE_SEC_POISON], img, err);
	if (!rc)
		rc = decode_pending(&secs[VMCE_SEC_PENDING], img, err);
	if (!rc && secs[VMCE_SEC_HELD].present)
		rc = decode_held(&secs[VMCE_SEC_HELD], img, err);
	if (!rc && secs[VMCE_SEC_WRITER].present)
		rc = decode_writer(&secs[VMCE_SEC_WRITER], img, err);
	return rc;
}

int vmce__stream_decode(const void *stream, size_t len, struct vmce_mig_image *img,
			struct vmce_err *err)
{
	int rc;

	memset(img, 0, sizeof(*img));
	if (!stream && len)
		return vmce__fail(err, -EINVAL, "stream: NULL with a length of %zu", len);
	rc = decode(stream ? stream : "", len, img, err);
	if (rc)
		vmce__mig_image_free(img);
	return rc;
}
