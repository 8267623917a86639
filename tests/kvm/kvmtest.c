// SPDX-License-Identifier: MIT
/*
 * kvmtest.c - see kvmtest.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "kvmtest.h"
#include "vmce_internal.h"

const char *kt_mode_name(enum kt_mode m)
{
	switch (m) {
	case KT_KERNEL:
		return "kvm-in-kernel";
	case KT_USER:
		return "vmce-user-space";
	default:
		return "vmce-hybrid";
	}
}

uint64_t kt_closest_cap(const struct vmce_profile *p)
{
	uint64_t supported = 0, want = 0;
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);

	if (fd >= 0) {
		if (ioctl(fd, KVM_X86_GET_MCE_CAP_SUPPORTED, &supported))
			supported = 0;
		close(fd);
	}
	if (p->caps & VMCE_CAP_CTL)
		want |= VMCE_MCG_CTL_P;
	if (p->caps & VMCE_CAP_SER)
		want |= VMCE_MCG_SER_P;
	if (p->caps & VMCE_CAP_CMCI)
		want |= VMCE_MCG_CMCI_P;
	if (p->caps & VMCE_CAP_LMCE)
		want |= VMCE_MCG_LMCE_P;
	return p->banks | (want & supported & ~VMCE_MCG_CAP_COUNT_MASK);
}

static int hook_pre_run(struct tinyvm *tv, void *opaque)
{
	struct kt *t = opaque;
	struct vmce_kvm_status st;
	int rc;

	(void)tv;
	if (t->stop)
		return 1;
	if (!t->kv)
		return 0;
	rc = vmce_kvm_pre_run(t->kv, &st, &t->err);
	if (rc == VMCE_KVM_SHUTDOWN) {
		t->shutdown = true;
		snprintf(t->reason, sizeof(t->reason), "%s", st.reason);
		return 1;
	}
	if (rc < 0) {
		printf("vmce_kvm_pre_run: %s\n", t->err.msg);
		return 1;
	}
	return 0;
}

static int hook_exit(struct tinyvm *tv, void *opaque)
{
	struct kt *t = opaque;

	(void)tv;
	if (!t->kv)
		return 0;
	return vmce_kvm_handle_exit(t->kv) == VMCE_KVM_EXIT_HANDLED;
}

static int start(struct kt *t, enum kt_mode m, const char *profile, bool irqchip)
{
	struct vmce_vm_config cfg;
	struct vmce_kvm_config kc;

	memset(t, 0, sizeof(*t));
	t->mode = m;
	t->hooks.pre_run = hook_pre_run;
	t->hooks.on_exit = hook_exit;
	t->hooks.opaque = t;
	vmce_vm_config_default(&cfg);
	if (vmce_profile_parse(profile, &cfg.profile, &t->err)) {
		printf("profile %s: %s\n", profile, t->err.msg);
		return -1;
	}
	t->kernel_cap = kt_closest_cap(&cfg.profile);
	if (tv_create(&t->tv, KT_MEM, irqchip)) {
		printf("tinyvm: %s\n", t->tv.err);
		return -1;
	}
	if (m != KT_KERNEL) {
		if (vmce_vm_create(&cfg, &t->vm, &t->err) ||
		    vmce_memmap_add(t->vm, 0, KT_MEM, (uint64_t)(uintptr_t)t->tv.mem, VMCE_NO_HPA,
				    &t->err)) {
			printf("vmce: %s\n", t->err.msg);
			return -1;
		}
		vmce_kvm_config_default(&kc);
		kc.vm_fd = t->tv.vm_fd;
		kc.mode = m == KT_HYBRID ? VMCE_KVM_MODE_HYBRID : VMCE_KVM_MODE_USERSPACE;
		if (vmce_kvm_create(t->vm, &kc, &t->k, &t->err)) {
			printf("vmce_kvm_create: %s\n", t->err.msg);
			return -1;
		}
	}
	if (tv_create_vcpu(&t->tv)) {
		printf("tinyvm: %s\n", t->tv.err);
		return -1;
	}
	if (m == KT_KERNEL) {
		if (ioctl(t->tv.vcpu_fd, KVM_X86_SETUP_MCE, &t->kernel_cap)) {
			printf("KVM_X86_SETUP_MCE(0x%" PRIx64 "): %s\n", t->kernel_cap,
			       strerror(errno));
			return -1;
		}
	} else if (vmce_kvm_vcpu_init(t->k, 0, t->tv.vcpu_fd, t->tv.run, &t->kv, &t->err)) {
		printf("vmce_kvm_vcpu_init: %s\n", t->err.msg);
		return -1;
	}
	return 0;
}

int kt_start(struct kt *t, enum kt_mode m, const char *profile)
{
	return start(t, m, profile, false);
}

int kt_start_irqchip(struct kt *t, enum kt_mode m, const char *profile)
{
	return start(t, m, profile, true);
}

void kt_stop(struct kt *t)
{
	vmce_kvm_vcpu_fini(t->kv);
	t->kv = NULL;
	vmce_kvm_destroy(t->k);
	t->k = NULL;
	tv_destroy(&t->tv);
	if (t->vm)
		vmce_vm_destroy(t->vm);
	t->vm = NULL;
}

enum tv_stop kt_run(struct kt *t)
{
	if (t->shutdown)
		return TV_STOP_HOOK;
	return tv_run(&t->tv, &t->hooks);
}

static bool dead(struct kt *t, enum tv_stop s, char *out, size_t len)
{
	if (s == TV_STOP_IDLE)
		return false;
	if (s == TV_STOP_SHUTDOWN || (s == TV_STOP_HOOK && t->shutdown))
		snprintf(out, len, "shutdown");
	else
		snprintf(out, len, "error(stop %d, exit %u)", (int)s, t->tv.run->exit_reason);
	return true;
}

void kt_rdmsr(struct kt *t, uint32_t index, char *out, size_t len)
{
	uint32_t gp = 0, lo = 0, hi = 0;

	tv_cmd(&t->tv, TV_RDMSR, 1, index, 0, 0);
	if (dead(t, kt_run(t), out, len))
		return;
	if (!tv_res_take(&t->tv, &t->respos, &gp) || !tv_res_take(&t->tv, &t->respos, &lo) ||
	    !tv_res_take(&t->tv, &t->respos, &hi)) {
		snprintf(out, len, "error(no result)");
		return;
	}
	if (gp)
		snprintf(out, len, "#GP");
	else
		snprintf(out, len, "0x%" PRIx64, ((uint64_t)hi << 32) | lo);
}

void kt_wrmsr(struct kt *t, uint32_t index, uint64_t value, char *out, size_t len)
{
	uint32_t gp = 0;

	tv_cmd(&t->tv, TV_WRMSR, 3, index, (uint32_t)value, (uint32_t)(value >> 32));
	if (dead(t, kt_run(t), out, len))
		return;
	if (!tv_res_take(&t->tv, &t->respos, &gp)) {
		snprintf(out, len, "error(no result)");
		return;
	}
	snprintf(out, len, "%s", gp ? "#GP" : "ok");
}

int kt_inject(struct kt *t, int bank, uint64_t status, uint64_t addr, uint64_t misc,
	      uint64_t mcg_status)
{
	if (t->mode == KT_KERNEL) {
		struct kvm_x86_mce m;

		memset(&m, 0, sizeof(m));
		m.status = status;
		m.addr = addr;
		m.misc = misc;
		m.mcg_status = mcg_status;
		m.bank = (uint8_t)bank;
		return ioctl(t->tv.vcpu_fd, KVM_X86_SET_MCE, &m);
	}
	struct vmce_queued q;
	struct vmce_vcpu *v = vmce_vm_vcpu(t->vm, 0);
	int rc;

	memset(&q, 0, sizeof(q));
	q.rec.signal = (status & VMCE_MCI_STATUS_UC) ? VMCE_SIGNAL_MC : VMCE_SIGNAL_NONE;
	q.rec.bank = bank;
	q.rec.status = status;
	q.rec.addr = addr;
	q.rec.misc = misc;
	q.rec.mcg_status = mcg_status;
	q.cls = (status & VMCE_MCI_STATUS_AR)	? VMCE_CLASS_SRAR
		: (status & VMCE_MCI_STATUS_UC) ? VMCE_CLASS_SRAO
						: VMCE_CLASS_CE;
	q.has_gpa = true;
	q.gpa = addr;
	snprintf(q.reason, sizeof(q.reason), "test record");
	pthread_mutex_lock(&t->vm->inject_lock);
	rc = vmce__vcpu_enqueue(v, &q);
	pthread_mutex_unlock(&t->vm->inject_lock);
	vmce_kvm_kick_pending(t->k);
	return rc;
}

void kt_inject_step(struct kt *t, int bank, uint64_t status, uint64_t addr, uint64_t misc,
		    uint64_t mcg_status, char *out, size_t len)
{
	enum tv_stop s;
	unsigned marks = t->tv.nmark;
	uint32_t r[9];

	tv_cmd(&t->tv, TV_HLT, 0, 0, 0, 0);
	s = kt_run(t);
	if (s != TV_STOP_HLT) {
		dead(t, s, out, len);
		return;
	}
	if (kt_inject(t, bank, status, addr, misc, mcg_status)) {
		snprintf(out, len, "error(inject: %s)", strerror(errno));
		return;
	}
	tv_cmd(&t->tv, TV_RFLAGS, 0, 0, 0, 0); /* any command: lets the guest run on */
	if (dead(t, kt_run(t), out, len))
		return;
	t->respos++; /* the RFLAGS result */
	if (t->tv.nmark == marks) {
		snprintf(out, len, "no #MC");
		return;
	}
	if (t->tv.nmcrep < t->mcpos + 9 || t->tv.mark[marks] != TV_MARK_MC_IN) {
		snprintf(out, len, "error(#MC report incomplete)");
		return;
	}
	memcpy(r, &t->tv.mcrep[t->mcpos], sizeof(r));
	t->mcpos += 9;
	snprintf(out, len,
		 "#MC mcg=0x%" PRIx64 " st=0x%" PRIx64 " addr=0x%" PRIx64 " misc=0x%" PRIx64
		 " if=%u",
		 ((uint64_t)r[1] << 32) | r[0], ((uint64_t)r[3] << 32) | r[2],
		 ((uint64_t)r[5] << 32) | r[4], ((uint64_t)r[7] << 32) | r[6], (r[8] >> 9) & 1);
}

bool kt_difference_listed(const char *doc_path, const char *id, enum kt_mode m)
{
	char line[1024];
	bool found = false;
	FILE *f = fopen(doc_path, "r");

	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f)) {
		char *a, *b, *modes;

		if (strncmp(line, "| `", 3))
			continue;
		a = line + 3;
		b = strchr(a, '`');
		if (!b)
			continue;
		*b = '\0';
		if (strcmp(a, id))
			continue;
		modes = strchr(b + 1, '|');
		if (!modes)
			continue;
		b = strchr(modes + 1, '|');
		if (b)
			*b = '\0';
		found = strstr(modes, m == KT_HYBRID ? "hybrid" : "user-space") != NULL;
	}
	fclose(f);
	return found;
}
