// SPDX-License-Identifier: MIT
/*
 * bench_latency: injection latency from a host SIGBUS (BUS_MCEERR_AR, raised with
 * rt_tgsigqueueinfo on the vCPU thread, as the host kernel does when a vCPU consumes poison)
 * to the first instruction of the guest's #MC handler reporting through port I/O, against a
 * plain KVM_RUN round trip (a guest OUT exit and re-entry) measured in the same run.
 *  - vmce (user-space and hybrid): the process's SIGBUS handler records the signal
 *    (vmce_kvm_sigbus_record()); the next vmce_kvm_pre_run() plans an SRAR and injects #MC.
 *  - kvm-in-kernel: the handler records the address; the vCPU thread then calls
 *    KVM_X86_SET_MCE (the in-kernel injection QEMU's SIGBUS path ends in; QEMU also
 *    synchronises the whole register state first, which is not counted here).
 * Samples of the three are interleaved.  Usage: bench_latency [--smoke]
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "benchvm.h"

#define NIMPL	 3
#define MAXREPS	 128
#define PAGE_GPA 0x200000u

static __thread int tl_kernel;	    /* this thread runs a vCPU of the in-kernel VM */
static volatile sig_atomic_t k_got; /* in-kernel VM: a BUS_MCEERR_AR arrived */
static void *volatile k_addr;

static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	if (tl_kernel) {
		if (si->si_code == BUS_MCEERR_AR) {
			k_addr = si->si_addr;
			k_got = 1;
		}
		return;
	}
	vmce_kvm_sigbus_record(sig, si);
}

struct job {
	unsigned seq, n;
	double us;
	uint64_t exits;
};

static int raise_ar(void *addr)
{
	siginfo_t si;

	memset(&si, 0, sizeof(si));
	si.si_signo = SIGBUS;
	si.si_code = BUS_MCEERR_AR;
	si.si_addr = addr;
	si.si_addr_lsb = 12;
	return (int)syscall(SYS_rt_tgsigqueueinfo, getpid(), (pid_t)syscall(SYS_gettid), SIGBUS,
			    &si);
}

static int latency_job(struct bv_vcpu *c, void *arg)
{
	struct job *j = arg;
	struct bvm *b = c->bvm;
	uint64_t gpa = PAGE_GPA + 0x1000ull * (j->seq % 512);
	double t0;

	tl_kernel = b->impl == BV_KERNEL;
	c->mc_report_us = 0;
	k_got = 0;
	t0 = bv_now_us();
	if (raise_ar(b->tv0.mem + gpa)) {
		fprintf(stderr, "rt_tgsigqueueinfo: %s\n", strerror(errno));
		return -1;
	}
	if (b->impl == BV_KERNEL) {
		struct kvm_x86_mce m;

		if (!k_got)
			return -1;
		memset(&m, 0, sizeof(m));
		m.bank = 1;
		m.status = 0xbd80000000000134ull; /* VAL UC EN MISCV ADDRV S AR, data load */
		m.mcg_status = 7;		  /* MCIP RIPV EIPV */
		m.addr = (uint64_t)((uint8_t *)k_addr - b->tv0.mem);
		m.misc = 0x8c;
		if (ioctl(c->tv->vcpu_fd, KVM_X86_SET_MCE, &m)) {
			fprintf(stderr, "KVM_X86_SET_MCE: %s\n", strerror(errno));
			return -1;
		}
	}
	if (bv_guest(c, TV_STOP_HLT, BV_CMD_HLT, 0, 0, 0, 0))
		return -1;
	if (c->mc_report_us == 0) {
		fprintf(stderr, "%s: the guest's #MC handler did not report\n", b->name);
		return -1;
	}
	j->us = c->mc_report_us - t0;
	return 0;
}

static int roundtrip_job(struct bv_vcpu *c, void *arg)
{
	struct job *j = arg;
	uint64_t o0 = c->bench_outs;
	double t0 = bv_now_us();

	if (bv_guest(c, TV_STOP_IDLE, BV_CMD_LOOP_OUT, 1, j->n, 0, 0))
		return -1;
	j->us = (bv_now_us() - t0) / j->n;
	j->exits = c->bench_outs - o0;
	return bv_guest(c, TV_STOP_HLT, BV_CMD_HLT, 0, 0, 0, 0);
}

int main(int argc, char **argv)
{
	bool smoke = argc > 1 && !strcmp(argv[1], "--smoke");
	const unsigned reps = smoke ? 3 : 101, n_rt = smoke ? 20 : 200;
	static double lat[NIMPL][MAXREPS], rt[NIMPL][MAXREPS], ratio[NIMPL][MAXREPS];
	static struct bvm vms[NIMPL];
	uint64_t rt_exits[NIMPL] = {0};
	double mlat[NIMPL], mrt[NIMPL], mratio[NIMPL];
	struct sigaction sa;
	unsigned seq = 0;
	int rc = 1;

	if (!tv_kvm_available())
		return 77;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_sigbus;
	sa.sa_flags = SA_SIGINFO;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGBUS, &sa, NULL))
		return 1;
	for (int m = 0; m < NIMPL; m++) {
		struct job j = {0};

		if (bv_create(&vms[m], (enum bv_impl)m, 2, 1) ||
		    bv_run_job(&vms[m], 1, latency_job, &j)) /* warm-up */
			goto out;
	}
	for (unsigned r = 0; r < reps; r++) {
		for (int m = 0; m < NIMPL; m++) {
			struct job l = {.seq = ++seq}, t = {.n = n_rt};

			if (bv_run_job(&vms[m], 1, latency_job, &l) ||
			    bv_run_job(&vms[m], 1, roundtrip_job, &t))
				goto out;
			lat[m][r] = l.us;
			rt[m][r] = t.us;
			rt_exits[m] = t.exits;
			ratio[m][r] = l.us / t.us;
		}
	}
	for (int m = 0; m < NIMPL; m++) {
		mlat[m] = bv_median(lat[m], reps);
		mrt[m] = bv_median(rt[m], reps);
		mratio[m] = bv_median(ratio[m], reps);
		printf("{\"bench\":\"latency\",\"impl\":\"%s\",\"sigbus_to_handler_us\":%.1f,"
		       "\"kvm_run_roundtrip_us\":%.2f,\"roundtrip_exits\":%" PRIu64
		       ",\"latency_over_roundtrip\":%.1f,\"samples\":%u}\n",
		       bv_impl_name((enum bv_impl)m), mlat[m], mrt[m], rt_exits[m], mratio[m],
		       reps);
	}
	printf("\nSIGBUS (BUS_MCEERR_AR) on the vCPU thread to the guest's #MC handler (median of"
	       " %u interleaved samples)\n",
	       reps);
	printf("| implementation | SIGBUS to handler us | KVM_RUN round trip us | ratio |\n"
	       "|---|---|---|---|\n");
	for (int m = 0; m < NIMPL; m++)
		printf("| %s | %.1f | %.2f | %.1f |\n", bv_impl_name((enum bv_impl)m), mlat[m],
		       mrt[m], mratio[m]);
	rc = 0;
out:
	for (int m = 0; m < NIMPL; m++)
		if (vms[m].nr)
			bv_destroy(&vms[m]);
	return rc;
}
