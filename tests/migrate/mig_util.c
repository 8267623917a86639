// SPDX-License-Identifier: MIT
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vmce_internal.h"
#include "migrate/migrate_internal.h"
#include "mig_util.h"

uint64_t mu_next(struct mu_rng *r)
{
	uint64_t x = r->s;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	r->s = x;
	return x * 0x2545f4914f6cdd1dull;
}

uint64_t mu_below(struct mu_rng *r, uint64_t n)
{
	return n ? mu_next(r) % n : 0;
}

uint64_t mu_value(struct mu_rng *r)
{
	static const uint64_t edges[] = {
		0, 1, ~0ull, 1ull << 63, 0x8000000000000001ull, 0xbd80000000000134ull};

	if (mu_below(r, 4) == 0)
		return edges[mu_below(r, sizeof(edges) / sizeof(edges[0]))];
	return mu_next(r);
}

void mu_random_profile(struct mu_rng *r, struct vmce_profile *p)
{
	memset(p, 0, sizeof(*p));
	p->vendor = mu_below(r, 3) == 0 ? VMCE_VENDOR_AMD : VMCE_VENDOR_INTEL;
	p->banks = (uint8_t)(mu_below(r, 3) ? 1 + mu_below(r, 4) : 1 + mu_below(r, VMCE_MAX_BANKS));
	p->report_bank = (uint8_t)mu_below(r, p->banks);
	p->compat_banks =
		(uint8_t)(p->banks +
			  (mu_below(r, 2) ? 0 : mu_below(r, VMCE_MAX_BANKS - p->banks + 1)));
	if (p->vendor == VMCE_VENDOR_INTEL)
		p->caps = (uint32_t)mu_below(r, 32) & (VMCE_CAP_CTL | VMCE_CAP_CMCI | VMCE_CAP_TES |
						       VMCE_CAP_SER | VMCE_CAP_LMCE);
	else
		p->caps = (mu_below(r, 2) ? VMCE_CAP_CTL : 0) |
			  (mu_below(r, 2) ? VMCE_CAP_SUCCOR : 0);
}

void mu_ceiling_profile(enum vmce_vendor v, struct vmce_profile *p)
{
	memset(p, 0, sizeof(*p));
	p->vendor = v;
	p->banks = VMCE_MAX_BANKS;
	p->report_bank = 1;
	p->compat_banks = VMCE_MAX_BANKS;
	p->caps = v == VMCE_VENDOR_INTEL ? (VMCE_CAP_CTL | VMCE_CAP_CMCI | VMCE_CAP_TES |
					    VMCE_CAP_SER | VMCE_CAP_LMCE)
					 : (VMCE_CAP_CTL | VMCE_CAP_SUCCOR);
}

int mu_enqueue(struct vmce_vm *vm, unsigned vcpu, int bank, enum vmce_signal sig, uint64_t status,
	       uint64_t addr, uint64_t mcg_status, uint64_t event_seq, const char *reason)
{
	struct vmce_queued q;
	int rc;

	memset(&q, 0, sizeof(q));
	q.rec.signal = sig;
	q.rec.bank = bank;
	q.rec.status = status;
	q.rec.addr = addr;
	q.rec.misc = addr ? 0x8c : 0;
	q.rec.mcg_status = mcg_status;
	q.cls = VMCE_CLASS_SRAO;
	q.has_gpa = addr != 0;
	q.gpa = addr & ~0xfffull;
	q.event_seq = event_seq;
	snprintf(q.reason, sizeof(q.reason), "%s", reason);
	pthread_mutex_lock(&vm->inject_lock);
	rc = vmce__vcpu_enqueue(&vm->vcpus[vcpu], &q);
	pthread_mutex_unlock(&vm->inject_lock);
	return rc;
}

static void random_record(struct mu_rng *r, const struct vmce_profile *p, struct vmce_queued *q)
{
	memset(q, 0, sizeof(*q));
	q->shutdown = mu_below(r, 16) == 0;
	q->rec.bank = (int)mu_below(r, p->banks + 1) - 1;
	q->rec.signal = (enum vmce_signal)mu_below(r, 3);
	if (q->rec.signal == VMCE_SIGNAL_CMCI && !(p->caps & VMCE_CAP_CMCI))
		q->rec.signal = VMCE_SIGNAL_MC;
	if (q->rec.bank < 0 && !q->shutdown)
		q->rec.signal = VMCE_SIGNAL_MC;
	q->rec.status = mu_value(r);
	q->rec.addr = mu_value(r);
	q->rec.misc = mu_value(r);
	q->rec.mcg_status = mu_below(r, 16);
	q->cls = (enum vmce_class)mu_below(r, 6);
	q->has_gpa = mu_below(r, 2);
	q->gpa = q->has_gpa ? mu_value(r) : 0;
	q->event_seq = mu_next(r);
	for (size_t i = 0, n = mu_below(r, 4) ? mu_below(r, 40) : mu_below(r, 160); i < n; i++)
		q->reason[i] = (char)(0x20 + mu_below(r, 0x5f));
}

void mu_random_state(struct mu_rng *r, struct vmce_vm *vm, size_t max_poison)
{
	const struct vmce_profile *p = vmce_vm_profile(vm);
	size_t npoison = max_poison ? mu_below(r, max_poison + 1) : 0;

	for (unsigned i = 0; i < vmce_vm_nr_vcpus(vm); i++) {
		struct vmce_vcpu *v = vmce_vm_vcpu(vm, i);
		struct vmce_vcpu_state st;
		struct vmce_err err;
		unsigned nq = mu_below(r, 3) ? (unsigned)mu_below(r, 3) : (unsigned)mu_below(r, 17);

		memset(&st, 0, sizeof(st));
		st.mcg_status = mu_value(r);
		if (p->caps & VMCE_CAP_CTL)
			st.mcg_ctl = mu_below(r, 2) ? ~0ull : mu_value(r);
		if (p->caps & VMCE_CAP_LMCE)
			st.mcg_ext_ctl = mu_value(r);
		st.amd_mcstatus_wren = p->vendor == VMCE_VENDOR_AMD && mu_below(r, 2);
		for (unsigned b = 0; b < p->banks; b++) {
			st.bank[b].ctl = mu_value(r);
			st.bank[b].status = mu_value(r);
			st.bank[b].addr = mu_value(r);
			st.bank[b].misc = mu_value(r);
			st.bank[b].ctl2 = (p->caps & VMCE_CAP_CMCI) ? mu_value(r) : 0;
		}
		if (vmce_vcpu_set_state(v, &st, &err)) {
			fprintf(stderr, "mu_random_state: %s\n", err.msg);
			abort();
		}
		vmce_vcpu_set_started(v, mu_below(r, 8) != 0);
		for (unsigned k = 0; k < nq; k++) {
			struct vmce_queued q;

			random_record(r, p, &q);
			pthread_mutex_lock(&vm->inject_lock);
			if (vmce__vcpu_enqueue(v, &q))
				abort();
			pthread_mutex_unlock(&vm->inject_lock);
		}
	}
	for (size_t i = 0; i < npoison; i++) {
		uint64_t gpa = mu_below(r, 2) ? mu_below(r, 1ull << 20) << 12
					      : (mu_next(r) & ((1ull << 52) - 1)) & ~0xfffull;

		if (vmce_poison_add(vm, gpa, NULL))
			abort();
	}
}

static bool same_queued(const struct vmce_queued *a, const struct vmce_queued *b)
{
	return a->rec.signal == b->rec.signal && a->rec.bank == b->rec.bank &&
	       a->rec.status == b->rec.status && a->rec.addr == b->rec.addr &&
	       a->rec.misc == b->rec.misc && a->rec.mcg_status == b->rec.mcg_status &&
	       a->cls == b->cls && a->has_gpa == b->has_gpa && a->gpa == b->gpa &&
	       a->shutdown == b->shutdown && a->event_seq == b->event_seq &&
	       !strcmp(a->reason, b->reason);
}

bool mu_same_state(struct vmce_vm *a, struct vmce_vm *b, char *why, size_t len)
{
	size_t na, nb;

	if (!vmce_profile_equal(vmce_vm_profile(a), vmce_vm_profile(b))) {
		snprintf(why, len, "profiles differ");
		return false;
	}
	if (vmce_vm_nr_vcpus(a) != vmce_vm_nr_vcpus(b)) {
		snprintf(why, len, "vCPU counts differ");
		return false;
	}
	for (unsigned i = 0; i < vmce_vm_nr_vcpus(a); i++) {
		struct vmce_vcpu *va = vmce_vm_vcpu(a, i), *vb = vmce_vm_vcpu(b, i);
		struct vmce_vcpu_state sa, sb;
		struct vmce_queued qa[VMCE_VCPU_QUEUE_LEN], qb[VMCE_VCPU_QUEUE_LEN];
		size_t ca, cb;
		uint64_t cap_a, cap_b;

		vmce_vcpu_get_state(va, &sa);
		vmce_vcpu_get_state(vb, &sb);
		if (sa.mcg_status != sb.mcg_status || sa.mcg_ctl != sb.mcg_ctl ||
		    sa.mcg_ext_ctl != sb.mcg_ext_ctl ||
		    sa.amd_mcstatus_wren != sb.amd_mcstatus_wren ||
		    memcmp(sa.bank, sb.bank, sizeof(sa.bank))) {
			snprintf(why, len, "vCPU %u register state differs", i);
			return false;
		}
		if (vmce_vcpu_started(va) != vmce_vcpu_started(vb)) {
			snprintf(why, len, "vCPU %u started flag differs", i);
			return false;
		}
		vmce_rdmsr(va, VMCE_MSR_MCG_CAP, &cap_a);
		vmce_rdmsr(vb, VMCE_MSR_MCG_CAP, &cap_b);
		if (cap_a != cap_b) {
			snprintf(why, len, "vCPU %u MCG_CAP differs", i);
			return false;
		}
		ca = vmce__vcpu_queue_snapshot(va, qa, VMCE_VCPU_QUEUE_LEN);
		cb = vmce__vcpu_queue_snapshot(vb, qb, VMCE_VCPU_QUEUE_LEN);
		if (ca != cb) {
			snprintf(why, len, "vCPU %u has %zu vs %zu queued records", i, ca, cb);
			return false;
		}
		for (size_t k = 0; k < ca; k++)
			if (!same_queued(&qa[k], &qb[k])) {
				snprintf(why, len, "vCPU %u queued record %zu differs", i, k);
				return false;
			}
	}
	na = vmce_poison_count(a);
	nb = vmce_poison_count(b);
	if (na != nb) {
		snprintf(why, len, "poisoned-page counts differ: %zu vs %zu", na, nb);
		return false;
	}
	if (na) {
		uint64_t *la = malloc(na * 8), *lb = malloc(na * 8);
		bool ok = vmce_poison_list(a, la, na, true, 0) == na &&
			  vmce_poison_list(b, lb, na, true, 0) == na && !memcmp(la, lb, na * 8);

		for (size_t i = 0; ok && i < na; i++)
			ok = vmce_poison_contains(b, la[i]);
		free(la);
		free(lb);
		if (!ok) {
			snprintf(why, len, "poisoned-page sets differ");
			return false;
		}
	}
	return true;
}

/* ---- text dump ----------------------------------------------------------------------------- */

struct sbuf {
	char *p;
	size_t len, cap;
};

static void sb_printf(struct sbuf *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void sb_printf(struct sbuf *s, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (s->len + (size_t)n + 1 > s->cap) {
		s->cap = (s->len + (size_t)n + 1) * 2;
		s->p = realloc(s->p, s->cap);
		if (!s->p)
			abort();
	}
	va_start(ap, fmt);
	vsnprintf(s->p + s->len, s->cap - s->len, fmt, ap);
	va_end(ap);
	s->len += (size_t)n;
}

char *mu_dump(struct vmce_vm *vm)
{
	const struct vmce_profile *p = vmce_vm_profile(vm);
	struct sbuf s = {0};
	char prof[128];
	size_t np = vmce_poison_count(vm);

	vmce_profile_format(p, prof, sizeof(prof));
	sb_printf(&s, "profile %s\n", prof);
	sb_printf(&s, "vcpus %u\n", vmce_vm_nr_vcpus(vm));
	for (unsigned i = 0; i < vmce_vm_nr_vcpus(vm); i++) {
		struct vmce_vcpu *v = vmce_vm_vcpu(vm, i);
		struct vmce_vcpu_state st;
		struct vmce_queued q[VMCE_VCPU_QUEUE_LEN];
		size_t nq;
		uint64_t cap;

		vmce_vcpu_get_state(v, &st);
		vmce_rdmsr(v, VMCE_MSR_MCG_CAP, &cap);
		sb_printf(&s,
			  "vcpu %u started=%d mcg_cap=0x%llx mcg_status=0x%llx mcg_ctl=0x%llx "
			  "mcg_ext_ctl=0x%llx amd_wren=%d\n",
			  i, vmce_vcpu_started(v), (unsigned long long)cap,
			  (unsigned long long)st.mcg_status, (unsigned long long)st.mcg_ctl,
			  (unsigned long long)st.mcg_ext_ctl, st.amd_mcstatus_wren);
		for (unsigned b = 0; b < p->banks; b++)
			sb_printf(&s,
				  "  bank %u ctl=0x%llx status=0x%llx addr=0x%llx misc=0x%llx "
				  "ctl2=0x%llx\n",
				  b, (unsigned long long)st.bank[b].ctl,
				  (unsigned long long)st.bank[b].status,
				  (unsigned long long)st.bank[b].addr,
				  (unsigned long long)st.bank[b].misc,
				  (unsigned long long)st.bank[b].ctl2);
		nq = vmce__vcpu_queue_snapshot(v, q, VMCE_VCPU_QUEUE_LEN);
		for (size_t k = 0; k < nq; k++)
			sb_printf(&s,
				  "  queued %zu signal=%d bank=%d status=0x%llx addr=0x%llx "
				  "misc=0x%llx mcg_status=0x%llx class=%d gpa=%s0x%llx "
				  "shutdown=%d event=%llu reason=\"%s\"\n",
				  k, (int)q[k].rec.signal, q[k].rec.bank,
				  (unsigned long long)q[k].rec.status,
				  (unsigned long long)q[k].rec.addr,
				  (unsigned long long)q[k].rec.misc,
				  (unsigned long long)q[k].rec.mcg_status, (int)q[k].cls,
				  q[k].has_gpa ? "" : "none:", (unsigned long long)q[k].gpa,
				  q[k].shutdown, (unsigned long long)q[k].event_seq, q[k].reason);
	}
	sb_printf(&s, "poisoned %zu\n", np);
	if (np) {
		uint64_t *l = malloc(np * 8);

		np = vmce_poison_list(vm, l, np, true, 0);
		for (size_t i = 0; i < np; i++)
			sb_printf(&s, "  page 0x%llx\n", (unsigned long long)l[i]);
		free(l);
	}
	return s.p;
}

/* ---- stream builder ------------------------------------------------------------------------- */

static void reserve(struct mu_buf *b, size_t n)
{
	if (b->len + n > b->cap) {
		b->cap = (b->len + n) * 2 + 64;
		b->p = realloc(b->p, b->cap);
		if (!b->p)
			abort();
	}
}

void mu_put8(struct mu_buf *b, uint8_t v)
{
	reserve(b, 1);
	b->p[b->len++] = v;
}

void mu_put16(struct mu_buf *b, uint16_t v)
{
	mu_put8(b, (uint8_t)v);
	mu_put8(b, (uint8_t)(v >> 8));
}

void mu_put32(struct mu_buf *b, uint32_t v)
{
	mu_put16(b, (uint16_t)v);
	mu_put16(b, (uint16_t)(v >> 16));
}

void mu_put64(struct mu_buf *b, uint64_t v)
{
	mu_put32(b, (uint32_t)v);
	mu_put32(b, (uint32_t)(v >> 32));
}

void mu_putn(struct mu_buf *b, const void *p, size_t n)
{
	reserve(b, n);
	if (n)
		memcpy(b->p + b->len, p, n);
	b->len += n;
}

void mu_buf_free(struct mu_buf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

/* Bitwise CRC-32C, independent of the library's table-driven one. */
uint32_t mu_crc32c(const void *p, size_t n)
{
	const uint8_t *s = p;
	uint32_t c = ~0u;

	while (n--) {
		c ^= *s++;
		for (int k = 0; k < 8; k++)
			c = (c >> 1) ^ (0x82f63b78u & (0u - (c & 1)));
	}
	return ~c;
}

static uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

void mu_fix_crc(uint8_t *s, size_t len)
{
	uint32_t c = mu_crc32c(s, len - 4);

	for (int i = 0; i < 4; i++)
		s[len - 4 + i] = (uint8_t)(c >> (8 * i));
}

void mu_build(struct mu_buf *out, uint16_t version, const struct mu_section *secs, size_t n)
{
	size_t total = 24 + 4;

	for (size_t i = 0; i < n; i++)
		total += 8 + secs[i].len;
	memset(out, 0, sizeof(*out));
	mu_putn(out, "vmce-mig", 8);
	mu_put16(out, version);
	mu_put16(out, 0);
	mu_put32(out, (uint32_t)total);
	mu_put32(out, (uint32_t)n);
	mu_put32(out, 0);
	for (size_t i = 0; i < n; i++) {
		mu_put16(out, secs[i].id);
		mu_put16(out, secs[i].flags);
		mu_put32(out, (uint32_t)secs[i].len);
		mu_putn(out, secs[i].payload, secs[i].len);
	}
	mu_put32(out, mu_crc32c(out->p, out->len));
}

int mu_split(const uint8_t *s, size_t len, struct mu_section *secs, size_t max)
{
	size_t off = 24;
	uint32_t n;

	if (len < 28)
		return -1;
	n = rd32(s + 16);
	for (uint32_t i = 0; i < n; i++) {
		if (i >= max || off + 8 > len - 4)
			return -1;
		secs[i].id = (uint16_t)(s[off] | s[off + 1] << 8);
		secs[i].flags = (uint16_t)(s[off + 2] | s[off + 3] << 8);
		secs[i].len = rd32(s + off + 4);
		secs[i].payload = s + off + 8;
		off += 8 + secs[i].len;
	}
	return (int)n;
}

void mu_blank_stream(struct mu_buf *out, const struct vmce_profile *p, unsigned nr_vcpus)
{
	struct mu_buf pro = {0}, vc = {0}, po = {0}, pe = {0};
	struct mu_section secs[4];

	mu_put8(&pro, (uint8_t)p->vendor);
	mu_put8(&pro, p->banks);
	mu_put8(&pro, p->report_bank);
	mu_put8(&pro, p->compat_banks);
	mu_put32(&pro, p->caps);
	mu_put64(&pro, vmce_profile_mcg_cap(p));
	mu_put32(&vc, nr_vcpus);
	mu_put8(&vc, p->banks);
	mu_put8(&vc, 0);
	mu_put16(&vc, 0);
	for (unsigned i = 0; i < nr_vcpus; i++) {
		mu_put64(&vc, 0);
		mu_put64(&vc, (p->caps & VMCE_CAP_CTL) ? ~0ull : 0);
		mu_put64(&vc, 0);
		mu_put32(&vc, 2); /* started */
		mu_put32(&vc, 0);
		for (unsigned b = 0; b < p->banks; b++) {
			mu_put64(&vc, ~0ull);
			for (int k = 0; k < 4; k++)
				mu_put64(&vc, 0);
		}
	}
	mu_put64(&po, 0);
	mu_put64(&pe, 0);
	secs[0] = (struct mu_section){1, 1, pro.p, pro.len};
	secs[1] = (struct mu_section){2, 1, vc.p, vc.len};
	secs[2] = (struct mu_section){3, 1, po.p, po.len};
	secs[3] = (struct mu_section){4, 1, pe.p, pe.len};
	mu_build(out, 1, secs, 4);
	mu_buf_free(&pro);
	mu_buf_free(&vc);
	mu_buf_free(&po);
	mu_buf_free(&pe);
}
