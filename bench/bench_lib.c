// SPDX-License-Identifier: MIT
/*
 * bench_lib: the library's own costs, without KVM.
 *  - vmce_rdmsr / vmce_wrmsr over a mixed sequence of the MSRs Linux touches;
 *  - vmce_inject of a planned memory error (4 vCPUs, broadcast), records drained in between;
 *  - the held-record queue: a burst injected while vCPU 0 is in its handler (held), then
 *    released and delivered, against the same burst injected and delivered directly;
 *  - vmce_plan_error (policy synthesis) over a mix of SRAO, SRAR, UCNA and corrected errors,
 *    and vmce_plan_decide (the same without writing the reason text);
 *  - poisoned-page set insert and lookup (hit, miss) at 10^3 .. 10^6 pages;
 *  - state stream encode (vmce_save) and decode (vmce_restore) per vCPU.
 * Default: times them (ns per call).  --callgrind: a fixed, short run for
 * valgrind --tool=callgrind, printing how many calls of each function it made, so that
 * bench/run.sh can divide callgrind's inclusive instruction counts by them.
 * --smoke: tiny counts.  One JSON object per result, then a table.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <vmce/migrate.h>
#include <vmce/policy.h>
#include <vmce/vmce.h>

#define MEM_SIZE	(1ull << 30)
#define MEM_HVA		0x7f0000000000ull
#define CG_STREAM_VCPUS 16

static unsigned n_calls_rd, n_calls_wr, n_calls_inject, n_calls_plan, n_calls_decide, n_calls_save,
	n_calls_restore;

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static struct vmce_vm *make_vm(unsigned vcpus, size_t max_poison)
{
	struct vmce_vm_config cfg;
	struct vmce_vm *vm;
	struct vmce_err err;

	vmce_vm_config_default(&cfg);
	if (vmce_profile_parse("intel,banks=2,ser,tes,cmci", &cfg.profile, &err))
		goto fail;
	cfg.nr_vcpus = vcpus;
	cfg.max_poisoned_pages = max_poison;
	if (vmce_vm_create(&cfg, &vm, &err) ||
	    vmce_memmap_add(vm, 0, MEM_SIZE, MEM_HVA, VMCE_NO_HPA, &err))
		goto fail;
	return vm;
fail:
	fprintf(stderr, "vmce: %s\n", err.msg);
	exit(1);
}

static void result(const char *op, const char *param, double ns, double calls)
{
	printf("{\"bench\":\"lib\",\"op\":\"%s\",\"param\":\"%s\",\"ns_per_call\":%.1f,"
	       "\"calls\":%.0f}\n",
	       op, param, ns, calls);
}

/* A mixed sequence: what Linux's #MC handler, poller and init touch (7 reads, 5 writes). */
static const struct {
	bool wr;
	uint32_t msr;
	uint64_t val;
} seq[] = {
	{false, VMCE_MSR_MCG_STATUS, 0},	  {false, VMCE_MSR_MCi_STATUS(0), 0},
	{false, VMCE_MSR_MCi_STATUS(1), 0},	  {false, VMCE_MSR_MCi_ADDR(1), 0},
	{false, VMCE_MSR_MCi_MISC(1), 0},	  {true, VMCE_MSR_MCi_STATUS(1), 0},
	{true, VMCE_MSR_MCG_STATUS, 0},		  {false, VMCE_MSR_MCG_CAP, 0},
	{true, VMCE_MSR_MCi_CTL(1), ~0ull},	  {false, VMCE_MSR_MCi_CTL2(1), 0},
	{true, VMCE_MSR_MCi_CTL2(1), 0x40000001}, {true, VMCE_MSR_MCi_ADDR(1), 0},
};
#define SEQ_LEN (sizeof(seq) / sizeof(seq[0]))

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Median of n values (reorders them). */
static double median(double *v, unsigned n)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static double *alloc_samples(unsigned n)
{
	double *v = calloc(n ? n : 1, sizeof(*v));

	if (!v) {
		fprintf(stderr, "out of memory\n");
		exit(1);
	}
	return v;
}

#define MSR_BATCH 100 /* rounds of the sequence per timed batch */

/* Reads and writes of the sequence, timed in batches of MSR_BATCH rounds (each kind in its own
 * loop); the median over batches of the time per call. */
static void bench_msr(unsigned rounds, double *ns_rd, double *ns_wr)
{
	struct vmce_vm *vm = make_vm(1, 0);
	struct vmce_vcpu *v = vmce_vm_vcpu(vm, 0);
	unsigned nb = rounds / MSR_BATCH, nrd = 0, nwr = 0;
	double *brd = alloc_samples(nb), *bwr = alloc_samples(nb);
	uint64_t sink = 0;

	for (unsigned b = 0; b < nb; b++) {
		unsigned r0 = nrd, w0 = nwr;
		double t0 = now_ns();

		for (unsigned r = 0; r < MSR_BATCH; r++) {
			for (unsigned i = 0; i < SEQ_LEN; i++) {
				uint64_t x;

				if (!seq[i].wr) {
					vmce_rdmsr(v, seq[i].msr, &x);
					sink += x;
					nrd++;
				}
			}
		}
		double t1 = now_ns();

		for (unsigned r = 0; r < MSR_BATCH; r++) {
			for (unsigned i = 0; i < SEQ_LEN; i++) {
				if (seq[i].wr) {
					vmce_wrmsr(v, seq[i].msr, seq[i].val);
					nwr++;
				}
			}
		}
		double t2 = now_ns();

		brd[b] = (t1 - t0) / (nrd - r0);
		bwr[b] = (t2 - t1) / (nwr - w0);
	}
	if (sink == 1)
		printf("#\n");
	n_calls_rd += nrd;
	n_calls_wr += nwr;
	*ns_rd = median(brd, nb);
	*ns_wr = median(bwr, nb);
	free(brd);
	free(bwr);
	vmce_vm_destroy(vm);
}

static void plan_error(struct vmce_vm *vm, unsigned i, struct vmce_host_error *e)
{
	vmce_host_error_init(e);
	e->addr_kind = VMCE_ADDR_HVA;
	e->addr = MEM_HVA + 0x100000ull + 0x1000ull * (i % 200000);
	e->addr_lsb = 12;
	switch (i % 4) {
	case 0:
		e->origin = VMCE_ORIGIN_SIGBUS_AO;
		break;
	case 1:
		e->origin = VMCE_ORIGIN_SIGBUS_AR;
		e->vcpu = (int)(i % vmce_vm_nr_vcpus(vm));
		break;
	case 2: /* UCNA: UC, S=0 */
		e->origin = VMCE_ORIGIN_HOST_MCE;
		e->addr_kind = VMCE_ADDR_GPA;
		e->addr = 0x100000ull + 0x1000ull * (i % 1000);
		e->status = 0xac0000000000009full; /* VAL UC EN ADDRV, no S */
		e->misc = 0x8c;
		break;
	default: /* corrected */
		e->origin = VMCE_ORIGIN_HOST_MCE;
		e->addr_kind = VMCE_ADDR_GPA;
		e->addr = 0x100000ull;
		e->status = 0x8c0000000000009full; /* VAL EN ADDRV */
		e->misc = 0x8c;
		break;
	}
}

#define PLAN_BATCH 100

/* vmce_plan_error(), or vmce_plan_decide() when lazy. */
static double bench_plan(unsigned n, bool lazy)
{
	struct vmce_vm *vm = make_vm(4, 0);
	struct vmce_plan plan;
	struct vmce_host_error e[4];
	struct vmce_err err;
	unsigned nb = n / PLAN_BATCH;
	double *t = alloc_samples(nb), m;

	for (unsigned i = 0; i < 4; i++)
		plan_error(vm, i, &e[i]);
	for (unsigned b = 0; b < nb; b++) {
		double t0 = now_ns();

		for (unsigned i = 0; i < PLAN_BATCH; i++) {
			int rc = lazy ? vmce_plan_decide(vm, &e[i % 4], &plan, &err)
				      : vmce_plan_error(vm, &e[i % 4], &plan, &err);

			if (rc < 0) {
				fprintf(stderr, "vmce_plan_%s: %s\n", lazy ? "decide" : "error",
					err.msg);
				exit(1);
			}
		}
		t[b] = (now_ns() - t0) / PLAN_BATCH;
	}
	*(lazy ? &n_calls_decide : &n_calls_plan) += nb * PLAN_BATCH;
	m = median(t, nb);
	free(t);
	vmce_vm_destroy(vm);
	return m;
}

/* Drain a vCPU as the backend and the guest would: deliver, then the guest clears. */
static void drain(struct vmce_vm *vm)
{
	for (unsigned i = 0; i < vmce_vm_nr_vcpus(vm); i++) {
		struct vmce_vcpu *v = vmce_vm_vcpu(vm, i);
		struct vmce_delivery d;

		while (vmce_vcpu_pending(v)) {
			vmce_vcpu_guest_progress(v); /* the guest's handler has returned */
			vmce_vcpu_deliver(v, true, &d);
			vmce_vcpu_guest_progress(v);
			vmce_wrmsr(v, VMCE_MSR_MCi_STATUS(1), 0);
			vmce_wrmsr(v, VMCE_MSR_MCG_STATUS, 0);
		}
	}
}

static double bench_inject(unsigned n)
{
	struct vmce_vm *vm = make_vm(4, 1u << 20);
	struct vmce_host_error e;
	struct vmce_plan plan;
	struct vmce_err err;
	double *t = alloc_samples(n), m;

	for (unsigned i = 0; i < n; i++) {
		double t0;

		plan_error(vm, i * 4, &e); /* SRAO at a new page, broadcast */
		if (vmce_plan_error(vm, &e, &plan, &err) < 0)
			goto fail;
		t0 = now_ns();
		if (vmce_inject(vm, &plan, &err) < 0)
			goto fail;
		t[i] = now_ns() - t0;
		drain(vm);
	}
	n_calls_inject += n;
	n_calls_plan += n;
	m = median(t, n);
	free(t);
	vmce_vm_destroy(vm);
	return m;
fail:
	fprintf(stderr, "inject: %s\n", err.msg);
	exit(1);
}

/*
 * The held-record queue's cost per record: n SRAOs (4 vCPUs, broadcast) injected and delivered
 * (a) directly, each drained before the next; (b) while vCPU 0 is still in its handler, so
 * that all are held, then released and delivered one by one as the guest clears MCIP.  The
 * same records are planned, queued, applied and logged in both; (b) adds holding, the
 * "held" event, the release and the settle bookkeeping.  Returns ns per record for each.
 */
/* (a): n SRAOs injected and drained one by one. */
static void __attribute__((noinline))
hold_direct(struct vmce_vm *vm, struct vmce_host_error *e, unsigned n)
{
	struct vmce_plan plan;
	struct vmce_err err;

	for (unsigned i = 0; i < n; i++) {
		if (vmce_handle_error(vm, &e[i], &plan, &err) < 0) {
			fprintf(stderr, "hold: %s\n", err.msg);
			exit(1);
		}
		drain(vm);
	}
}

/* (b): n SRAOs injected while vCPU 0 is in its handler, then released and drained. */
static void __attribute__((noinline))
hold_held(struct vmce_vm *vm, struct vmce_host_error *e, unsigned n)
{
	struct vmce_plan plan;
	struct vmce_err err;

	for (unsigned i = 0; i < n; i++)
		if (vmce_handle_error(vm, &e[i], &plan, &err) < 0) {
			fprintf(stderr, "hold: %s\n", err.msg);
			exit(1);
		}
	vmce_wrmsr(vmce_vm_vcpu(vm, 0), VMCE_MSR_MCG_STATUS, 0);
	/* The vCPUs take turns, as they would run side by side. */
	for (bool busy = true; busy;) {
		busy = false;
		drain(vm);
		for (unsigned i = 0; i < 4; i++)
			busy |= vmce_vcpu_pending(vmce_vm_vcpu(vm, i));
	}
}

/*
 * The held-record queue's cost per record: n SRAOs (4 vCPUs, broadcast) injected and delivered
 * (a) directly, each drained before the next; (b) while vCPU 0 is still in its handler, so
 * that all are held, then released and delivered one by one as the guest clears MCIP.  The
 * same records are planned, queued, applied and logged in both; (b) adds holding, the
 * "held" event, the release and the settle bookkeeping.  ns per record for each.
 */
static void bench_hold(unsigned n, double *direct, double *held)
{
	struct vmce_vm *vm = make_vm(4, 1u << 20);
	struct vmce_host_error *e = calloc(n, sizeof(*e));
	struct vmce_hold_status hs;
	struct vmce_err err;
	double t0;

	if (!e || vmce_hold_configure(vm, n, 0, &err)) {
		fprintf(stderr, "hold: cannot set up\n");
		exit(1);
	}
	for (unsigned i = 0; i < n; i++)
		plan_error(vm, i * 4, &e[i]);
	t0 = now_ns();
	hold_direct(vm, e, n);
	*direct = (now_ns() - t0) / n;
	vmce_wrmsr(vmce_vm_vcpu(vm, 0), VMCE_MSR_MCG_STATUS, VMCE_MCG_STATUS_MCIP);
	for (unsigned i = 0; i < n; i++)
		plan_error(vm, (n + i) * 4, &e[i]);
	t0 = now_ns();
	hold_held(vm, e, n);
	*held = (now_ns() - t0) / n;
	vmce_hold_status(vm, &hs);
	if (hs.count || hs.held != n || hs.released != n) {
		fprintf(stderr, "hold: %u left, %llu held, %llu released\n", hs.count,
			(unsigned long long)hs.held, (unsigned long long)hs.released);
		exit(1);
	}
	free(e);
	vmce_vm_destroy(vm);
}

static uint64_t page_of(uint64_t i)
{
	/* a bijection on 30-bit page numbers: scattered, distinct pages; never page 0 */
	return ((((i + 1) * 0x9E3779B1ull) & ((1ull << 30) - 1)) | (1ull << 30)) << 12;
}

static void bench_poison(unsigned n, double *ins, double *hit, double *miss)
{
	struct vmce_vm *vm = make_vm(1, n);
	struct vmce_err err;
	unsigned found = 0;
	double t0;

	t0 = now_ns();
	for (unsigned i = 0; i < n; i++)
		if (vmce_poison_add(vm, page_of(i), &err)) {
			fprintf(stderr, "vmce_poison_add: %s\n", err.msg);
			exit(1);
		}
	*ins = (now_ns() - t0) / n;
	t0 = now_ns();
	for (unsigned i = 0; i < n; i++)
		found += vmce_poison_contains(vm, page_of(i));
	*hit = (now_ns() - t0) / n;
	t0 = now_ns();
	for (unsigned i = 0; i < n; i++)
		found -= vmce_poison_contains(vm, page_of((uint64_t)n + i));
	*miss = (now_ns() - t0) / n;
	if (found != n || vmce_poison_count(vm) != n) {
		fprintf(stderr, "poisoned-page set: wrong contents\n");
		exit(1);
	}
	vmce_vm_destroy(vm);
}

static void bench_stream(unsigned vcpus, unsigned reps, double *enc, double *dec, size_t *len)
{
	struct vmce_vm *a = make_vm(vcpus, 0), *b = make_vm(vcpus, 0);
	struct vmce_err err;
	double *te = alloc_samples(reps), *td = alloc_samples(reps);

	for (unsigned i = 0; i < vcpus; i++) { /* some non-reset state in every vCPU */
		struct vmce_vcpu *v = vmce_vm_vcpu(a, i);

		vmce_host_wrmsr(v, VMCE_MSR_MCi_STATUS(1), 0xbd0000000000017aull);
		vmce_host_wrmsr(v, VMCE_MSR_MCi_ADDR(1), 0x123000 + i * 0x1000ull);
		vmce_host_wrmsr(v, VMCE_MSR_MCi_MISC(1), 0x8c);
		vmce_wrmsr(v, VMCE_MSR_MCi_CTL2(1), 0x40000001);
	}
	for (unsigned r = 0; r < reps; r++) {
		void *buf = NULL;
		double t0 = now_ns();

		if (vmce_save_alloc(a, &buf, len, &err))
			goto fail;
		double t1 = now_ns();

		if (vmce_restore(b, buf, *len, &err))
			goto fail;
		td[r] = now_ns() - t1;
		te[r] = t1 - t0;
		free(buf);
	}
	n_calls_save += reps;
	n_calls_restore += reps;
	*enc = median(te, reps) / vcpus;
	*dec = median(td, reps) / vcpus;
	free(te);
	free(td);
	vmce_vm_destroy(a);
	vmce_vm_destroy(b);
	return;
fail:
	fprintf(stderr, "stream: %s\n", err.msg);
	exit(1);
}

int main(int argc, char **argv)
{
	bool smoke = argc > 1 && !strcmp(argv[1], "--smoke");
	bool cg = argc > 1 && !strcmp(argv[1], "--callgrind");
	unsigned scale = smoke ? 1 : cg ? 10 : 100;
	double rd, wr, inj, plan, decide, hdirect = 0, hheld = 0;
	double ins[4] = {0}, hit[4] = {0}, miss[4] = {0}, enc[3] = {0}, dec[3] = {0};
	size_t len[3] = {0};
	const unsigned psz[4] = {1000, 10000, 100000, 1000000};
	const unsigned svc[3] = {1, 16, 256};
	unsigned npsz = smoke || cg ? 2 : 4;
	char p[32];

	bench_msr(500 * scale, &rd, &wr);
	plan = bench_plan(200 * scale, false);
	decide = bench_plan(200 * scale, true);
	inj = bench_inject(50 * scale);
	bench_hold(10 * scale, &hdirect, &hheld);
	for (unsigned i = 0; i < npsz; i++) { /* the median of 3 fresh sets (1 in short runs) */
		double a[3], h[3], m[3];
		unsigned k = smoke || cg ? 1 : 3;

		for (unsigned j = 0; j < k; j++)
			bench_poison(psz[i], &a[j], &h[j], &m[j]);
		ins[i] = median(a, k);
		hit[i] = median(h, k);
		miss[i] = median(m, k);
	}
	for (unsigned i = 0; i < 3; i++) /* under callgrind: 16 vCPUs only (calls per vCPU) */
		if (!cg || svc[i] == CG_STREAM_VCPUS)
			bench_stream(svc[i], smoke ? 2 : cg ? 5 : 50, &enc[i], &dec[i], &len[i]);

	if (cg) {
		const struct {
			const char *fn;
			unsigned n, vcpus;
		} calls[] = {{"vmce_rdmsr", n_calls_rd, 1},
			     {"vmce_wrmsr", n_calls_wr, 1},
			     {"vmce_inject", n_calls_inject, 4},
			     {"vmce_plan_error", n_calls_plan, 4},
			     {"vmce_plan_decide", n_calls_decide, 4},
			     /* per record: the function runs once for 10 * scale records */
			     {"hold_direct", 10 * scale, 4},
			     {"hold_held", 10 * scale, 4},
			     {"vmce_save_alloc", n_calls_save, CG_STREAM_VCPUS},
			     {"vmce_restore", n_calls_restore, CG_STREAM_VCPUS}};

		for (unsigned i = 0; i < sizeof(calls) / sizeof(calls[0]); i++)
			printf("{\"bench\":\"lib-calls\",\"function\":\"%s\",\"calls\":%u,"
			       "\"vcpus\":%u}\n",
			       calls[i].fn, calls[i].n, calls[i].vcpus);
		return 0;
	}
	result("vmce_rdmsr", "mixed", rd, n_calls_rd);
	result("vmce_wrmsr", "mixed", wr, n_calls_wr);
	result("vmce_plan_error", "mixed srao/srar/ucna/ce, 4 vcpus", plan, 200.0 * scale);
	result("vmce_plan_decide", "mixed srao/srar/ucna/ce, 4 vcpus", decide, 200.0 * scale);
	result("vmce_inject", "srao broadcast, 4 vcpus", inj, 50.0 * scale);
	result("srao_direct_record", "inject + deliver on 4 vcpus", hdirect, 10.0 * scale);
	result("srao_held_record", "held, released, delivered on 4 vcpus", hheld, 10.0 * scale);
	for (unsigned i = 0; i < npsz; i++) {
		snprintf(p, sizeof(p), "%u pages", psz[i]);
		result("poison_insert", p, ins[i], psz[i]);
		result("poison_lookup_hit", p, hit[i], psz[i]);
		result("poison_lookup_miss", p, miss[i], psz[i]);
	}
	for (unsigned i = 0; i < 3; i++) {
		snprintf(p, sizeof(p), "%u vcpus", svc[i]);
		result("stream_encode_per_vcpu", p, enc[i], smoke ? 2 : 50);
		result("stream_decode_per_vcpu", p, dec[i], smoke ? 2 : 50);
		printf("{\"bench\":\"lib\",\"op\":\"stream_bytes\",\"param\":\"%s\","
		       "\"bytes\":%zu,\"bytes_per_vcpu\":%.1f}\n",
		       p, len[i], (double)len[i] / svc[i]);
	}
	printf("\nlibrary costs (ns per call, this host, one run)\n| operation | parameter | ns |\n"
	       "|---|---|---|\n");
	printf("| vmce_rdmsr | mixed | %.1f |\n| vmce_wrmsr | mixed | %.1f |\n", rd, wr);
	printf("| vmce_plan_error | 4 kinds | %.1f |\n| vmce_plan_decide | 4 kinds | %.1f |\n"
	       "| vmce_inject | broadcast to 4 | %.1f |\n",
	       plan, decide, inj);
	printf("| SRAO delivered directly / held first (per record, 4 vCPUs) | %u records | %.1f / "
	       "%.1f |\n",
	       10 * scale, hdirect, hheld);
	for (unsigned i = 0; i < npsz; i++)
		printf("| poison insert / hit / miss | %u pages | %.1f / %.1f / %.1f |\n", psz[i],
		       ins[i], hit[i], miss[i]);
	for (unsigned i = 0; i < 3; i++)
		printf("| stream encode / decode per vCPU | %u vCPUs (%zu bytes) | %.1f / %.1f |\n",
		       svc[i], len[i], enc[i], dec[i]);
	return 0;
}
