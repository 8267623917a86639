// SPDX-License-Identifier: MIT
/*
 * Live migration of vmce-vm (stop-and-copy) over a UNIX or loopback TCP socket: the source side
 * (the control socket's "migrate" request) and the destination side (--incoming ADDR).  The
 * wire format and the sequence are in docs/control-protocol.md section "Migration".  Every byte
 * read from the socket is untrusted: frame types and lengths are bounded before anything is
 * allocated, and every value is checked before it is used.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <vmce/migrate.h>

#include "json.h"
#include "vmm.h"

#define MIG_MAGIC	 0x31474d45434d56ull /* "VMCEMG1" */
#define MIG_VERSION	 1
#define MIG_MAX_FRAME	 (VMCE_STREAM_MAX_LEN + 64)
#define MIG_MEM_CHUNK	 (256u << 10) /* bytes of guest memory per MEM frame at most */
#define MIG_MAX_MSRS	 256
#define MIG_MAX_REASON	 512
#define MIG_IO_TIMEOUT_S 20
#define PAGE		 ((uint64_t)4096)
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

static const char *const frame_names[F_MAX] = {"?",    "hello", "reply",  "mem",  "mem-done",
					       "vcpu", "vmce",	"commit", "abort"};

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
struct msrs_buf {
	uint32_t nmsrs, pad;
	struct kvm_msr_entry e[MIG_MAX_MSRS];
};

/* ---- addresses ------------------------------------------------------------------------------ */

union mig_addr {
	struct sockaddr sa;
	struct sockaddr_un un;
	struct sockaddr_in in;
	struct sockaddr_in6 in6;
};

/* "PATH" (a UNIX socket: "unix:PATH", or text with a '/' or without a ':') or "HOST:PORT"
 * with a loopback HOST (127.0.0.0/8, localhost, [::1]).  Other hosts are refused. */
static int vmm_mig_parse_addr(const char *s, union mig_addr *a, socklen_t *alen, char *why,
			      size_t wlen)
{
	const char *colon;
	char host[64];
	unsigned long port;
	char *end;

	memset(a, 0, sizeof(*a));
	if (!s || !*s) {
		snprintf(why, wlen, "empty address");
		return -1;
	}
	if (!strncmp(s, "unix:", 5) || (strchr(s, '/') && s[0] != '[') || !strchr(s, ':')) {
		const char *p = strncmp(s, "unix:", 5) ? s : s + 5;

		if (!*p || strlen(p) >= sizeof(a->un.sun_path)) {
			snprintf(why, wlen, "UNIX socket path empty or longer than %zu bytes",
				 sizeof(a->un.sun_path) - 1);
			return -1;
		}
		a->un.sun_family = AF_UNIX;
		strcpy(a->un.sun_path, p);
		*alen = sizeof(a->un);
		return 0;
	}
	colon = strrchr(s, ':');
	if (!colon || colon == s || (size_t)(colon - s) >= sizeof(host)) {
		snprintf(why, wlen,
			 "'%.64s' is neither a UNIX socket path nor a loopback HOST:PORT", s);
		return -1;
	}
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = '\0';
	errno = 0;
	port = strtoul(colon + 1, &end, 10);
	if (errno || end == colon + 1 || *end || port < 1 || port > 65535) {
		snprintf(why, wlen, "port '%.16s' is not a number from 1 to 65535", colon + 1);
		return -1;
	}
	if (!strcmp(host, "localhost"))
		strcpy(host, "127.0.0.1");
	if (inet_pton(AF_INET, host, &a->in.sin_addr) == 1) {
		if ((ntohl(a->in.sin_addr.s_addr) >> 24) != 127) {
			snprintf(why, wlen,
				 "%s is not a loopback address (migration runs over UNIX or "
				 "loopback TCP sockets only)",
				 host);
			return -1;
		}
		a->in.sin_family = AF_INET;
		a->in.sin_port = htons((uint16_t)port);
		*alen = sizeof(a->in);
		return 0;
	}
	if (host[0] == '[' && host[strlen(host) - 1] == ']') {
		memmove(host, host + 1, strlen(host));
		host[strlen(host) - 1] = '\0';
	}
	if (inet_pton(AF_INET6, host, &a->in6.sin6_addr) == 1) {
		if (!IN6_IS_ADDR_LOOPBACK(&a->in6.sin6_addr)) {
			snprintf(why, wlen,
				 "%s is not a loopback address (migration runs over UNIX or "
				 "loopback TCP sockets only)",
				 host);
			return -1;
		}
		a->in6.sin6_family = AF_INET6;
		a->in6.sin6_port = htons((uint16_t)port);
		*alen = sizeof(a->in6);
		return 0;
	}
	snprintf(why, wlen, "host '%.64s' is not an IP address or localhost (loopback only)", host);
	return -1;
}

static void set_timeouts(int fd)
{
	struct timeval tv = {MIG_IO_TIMEOUT_S, 0};
	int one = 1;

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* ---- framing -------------------------------------------------------------------------------- */

struct mig_conn {
	int fd;
	uint64_t bytes_out, bytes_in;
	char err[MIG_MAX_REASON];
};

static int __attribute__((format(printf, 2, 3))) mig_fail(struct mig_conn *m, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(m->err, sizeof(m->err), fmt, ap);
	va_end(ap);
	return -1;
}

static int write_all(struct mig_conn *m, const void *p, size_t n)
{
	const uint8_t *b = p;

	while (n) {
		ssize_t w = send(m->fd, b, n, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return mig_fail(m, "sending to the peer: %s",
					w < 0 ? strerror(errno) : "connection closed");
		b += w;
		n -= (size_t)w;
		m->bytes_out += (uint64_t)w;
	}
	return 0;
}

static int read_all(struct mig_conn *m, void *p, size_t n)
{
	uint8_t *b = p;

	while (n) {
		ssize_t r = recv(m->fd, b, n, 0);

		if (r < 0 && errno == EINTR)
			continue;
		if (r == 0)
			return mig_fail(m, "the peer closed the connection");
		if (r < 0)
			return mig_fail(m, "receiving from the peer: %s",
					errno == EAGAIN ? "timed out" : strerror(errno));
		b += r;
		n -= (size_t)r;
		m->bytes_in += (uint64_t)r;
	}
	return 0;
}

static int send_frame2(struct mig_conn *m, uint32_t type, const void *a, size_t alen, const void *b,
		       size_t blen)
{
	struct mig_hdr h = {type, 0, (uint64_t)alen + blen};

	if (write_all(m, &h, sizeof(h)) || (alen && write_all(m, a, alen)) ||
	    (blen && write_all(m, b, blen)))
		return -1;
	return 0;
}

static int send_frame(struct mig_conn *m, uint32_t type, const void *p, size_t len)
{
	return send_frame2(m, type, p, len, NULL, 0);
}

/* Receive one frame header; the type must be one of `allowed` (a bit mask of 1 << type) and the
 * length at most max. */
static int recv_hdr(struct mig_conn *m, uint32_t allowed, uint64_t max, struct mig_hdr *h)
{
	if (read_all(m, h, sizeof(*h)))
		return -1;
	if (h->type == 0 || h->type >= F_MAX || !(allowed & (1u << h->type)))
		return mig_fail(m, "protocol error: unexpected frame type %u", h->type);
	if (h->reserved)
		return mig_fail(m, "protocol error: %s frame: reserved field is 0x%x, not 0",
				frame_names[h->type], h->reserved);
	if (h->len > max)
		return mig_fail(
			m, "protocol error: %s frame of %" PRIu64 " bytes (at most %" PRIu64 ")",
			frame_names[h->type], h->len, max);
	return 0;
}

static int send_reply(struct mig_conn *m, bool ok, const char *reason)
{
	uint32_t v = ok;
	size_t n = strnlen(reason, MIG_MAX_REASON - 1);

	return send_frame2(m, F_REPLY, &v, sizeof(v), reason, n);
}

/* A reply frame: 0 when ok, -1 with m->err = the peer's reason (or the transport error). */
static int recv_reply(struct mig_conn *m, const char *step)
{
	struct mig_hdr h;
	char reason[MIG_MAX_REASON];
	uint32_t ok;
	size_t n;

	if (recv_hdr(m, 1u << F_REPLY, sizeof(ok) + MIG_MAX_REASON - 1, &h))
		return -1;
	if (h.len < sizeof(ok))
		return mig_fail(m, "protocol error: reply frame of %" PRIu64 " bytes", h.len);
	n = (size_t)h.len - sizeof(ok);
	if (read_all(m, &ok, sizeof(ok)) || read_all(m, reason, n))
		return -1;
	reason[n] = '\0';
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)reason[i] < 0x20 || (unsigned char)reason[i] > 0x7e)
			reason[i] = '?';
	if (ok > 1)
		return mig_fail(m, "protocol error: reply status %u", ok);
	if (!ok)
		return mig_fail(m, "the destination refused (%s): %s", step, reason);
	return 0;
}

/* ---- vCPU state ----------------------------------------------------------------------------- */

static bool mca_msr(uint32_t i)
{
	return (i >= 0x179 && i <= 0x17b) || (i >= 0x280 && i <= 0x29f) ||
	       (i >= 0x400 && i <= 0x47f) || i == 0x4d0;
}

/* The MSRs that travel: KVM_GET_MSR_INDEX_LIST minus the MCA MSRs (the vmce stream carries
 * them), keeping those this vCPU can read. */
static int msr_list(struct vmm *vm, int vcpu_fd, struct msrs_buf *out)
{
	struct kvm_msr_list *l = calloc(1, sizeof(*l) + 1024 * sizeof(uint32_t));
	unsigned n = 0;

	if (!l)
		return -1;
	l->nmsrs = 1024;
	if (ioctl(vm->kvm_fd, KVM_GET_MSR_INDEX_LIST, l) < 0) {
		free(l);
		return -1;
	}
	for (unsigned i = 0; i < l->nmsrs && n < MIG_MAX_MSRS; i++) {
		struct {
			uint32_t nmsrs, pad;
			struct kvm_msr_entry e;
		} one;

		if (mca_msr(l->indices[i]))
			continue;
		memset(&one, 0, sizeof(one));
		one.nmsrs = 1;
		one.e.index = l->indices[i];
		if (ioctl(vcpu_fd, KVM_GET_MSRS, &one) != 1)
			continue;
		out->e[n++] = one.e;
	}
	out->nmsrs = n;
	free(l);
	return 0;
}

static int get_vcpu(struct vmm *vm, unsigned i, struct mig_vcpu *v, struct msrs_buf *msrs,
		    char *why, size_t wlen)
{
	int fd = vm->vcpu[i].fd;

	memset(v, 0, sizeof(*v));
	v->index = i;
#define GET(req, p)                                                                                \
	do {                                                                                       \
		if (ioctl(fd, req, p) < 0) {                                                       \
			snprintf(why, wlen, "vCPU %u: " #req ": %s", i, strerror(errno));          \
			return -1;                                                                 \
		}                                                                                  \
	} while (0)
	GET(KVM_GET_REGS, &v->regs);
	GET(KVM_GET_SREGS, &v->sregs);
	GET(KVM_GET_FPU, &v->fpu);
	if (ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE) > 0) {
		GET(KVM_GET_XSAVE, v->xsave);
		v->flags |= VF_XSAVE;
	}
	if (ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XCRS) > 0) {
		GET(KVM_GET_XCRS, &v->xcrs);
		v->flags |= VF_XCRS;
	}
	GET(KVM_GET_VCPU_EVENTS, &v->events);
	GET(KVM_GET_DEBUGREGS, &v->debugregs);
	GET(KVM_GET_LAPIC, &v->lapic);
	GET(KVM_GET_MP_STATE, &v->mp);
#undef GET
	if (msr_list(vm, fd, msrs)) {
		snprintf(why, wlen, "vCPU %u: KVM_GET_MSR_INDEX_LIST: %s", i, strerror(errno));
		return -1;
	}
	if (ioctl(fd, KVM_GET_MSRS, msrs) != (int)msrs->nmsrs) {
		snprintf(why, wlen, "vCPU %u: KVM_GET_MSRS of %u MSRs failed", i, msrs->nmsrs);
		return -1;
	}
	v->nmsrs = msrs->nmsrs;
	return 0;
}

/* Destination: load a received vCPU state into KVM, in the order that keeps dependencies
 * (registers, extended state, control registers, MSRs, run state, LAPIC, pending events). */
static int set_vcpu(struct vmm *vm, const struct mig_vcpu *v, struct msrs_buf *msrs, char *why,
		    size_t wlen)
{
	int fd = vm->vcpu[v->index].fd;
	int r;

#define SET(req, p)                                                                                \
	do {                                                                                       \
		if (ioctl(fd, req, p) < 0) {                                                       \
			snprintf(why, wlen, "vCPU %u: " #req ": %s", v->index, strerror(errno));   \
			return -1;                                                                 \
		}                                                                                  \
	} while (0)
	SET(KVM_SET_REGS, &v->regs);
	if (v->flags & VF_XSAVE)
		SET(KVM_SET_XSAVE, v->xsave);
	else
		SET(KVM_SET_FPU, &v->fpu);
	if (v->flags & VF_XCRS)
		SET(KVM_SET_XCRS, &v->xcrs);
	SET(KVM_SET_SREGS, &v->sregs);
	msrs->nmsrs = v->nmsrs;
	r = ioctl(fd, KVM_SET_MSRS, msrs);
	if (r != (int)v->nmsrs) {
		snprintf(why, wlen, "vCPU %u: KVM_SET_MSRS refused MSR 0x%x (%d of %u set)",
			 v->index, r >= 0 && (unsigned)r < v->nmsrs ? msrs->e[r].index : 0, r,
			 v->nmsrs);
		return -1;
	}
	SET(KVM_SET_MP_STATE, &v->mp);
	SET(KVM_SET_LAPIC, &v->lapic);
	SET(KVM_SET_VCPU_EVENTS, &v->events);
	SET(KVM_SET_DEBUGREGS, &v->debugregs);
#undef SET
	return 0;
}

/* ---- pausing the vCPUs (source) ------------------------------------------------------------- */

static int pause_vcpus(struct vmm *vm, char *why, size_t wlen)
{
	struct timespec ts;
	int rc = 0;

	atomic_store(&vm->pause_req, true);
	for (unsigned i = 0; i < vm->nr_vcpus; i++)
		vmce_kvm_kick(vm->kvm, i);
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 5;
	pthread_mutex_lock(&vm->lock);
	while (vm->vcpus_parked < vm->nr_vcpus && !atomic_load(&vm->stopped) && rc == 0)
		rc = pthread_cond_timedwait(&vm->cond, &vm->lock, &ts);
	if (atomic_load(&vm->stopped)) {
		snprintf(why, wlen, "the guest stopped");
		rc = -1;
	} else if (vm->vcpus_parked < vm->nr_vcpus) {
		snprintf(why, wlen, "only %u of %u vCPUs paused within 5 s", vm->vcpus_parked,
			 vm->nr_vcpus);
		rc = -1;
	}
	pthread_mutex_unlock(&vm->lock);
	return rc ? -1 : 0;
}

void vmm_resume_vcpus(struct vmm *vm)
{
	pthread_mutex_lock(&vm->lock);
	atomic_store(&vm->pause_req, false);
	pthread_cond_broadcast(&vm->cond);
	pthread_mutex_unlock(&vm->lock);
}

/* vCPU thread: park while a migration holds the vCPUs. */
void vmm_vcpu_park(struct vmm *vm)
{
	pthread_mutex_lock(&vm->lock);
	vm->vcpus_parked++;
	pthread_cond_broadcast(&vm->cond);
	while (atomic_load(&vm->pause_req) && !atomic_load(&vm->stopped))
		pthread_cond_wait(&vm->cond, &vm->lock);
	vm->vcpus_parked--;
	pthread_mutex_unlock(&vm->lock);
}

/* ---- source --------------------------------------------------------------------------------- */

static int send_memory(struct vmm *vm, struct mig_conn *m, struct vmm_mig_result *res)
{
	uint64_t gpa = 0, counts[2];

	while (gpa < vm->mem_size) {
		uint64_t start, len = 0;

		if (vmce_poison_contains(vm->vmce, gpa)) {
			res->pages_skipped++;
			gpa += PAGE;
			continue;
		}
		start = gpa;
		while (gpa < vm->mem_size && len < MIG_MEM_CHUNK &&
		       !vmce_poison_contains(vm->vmce, gpa)) {
			gpa += PAGE;
			len += PAGE;
		}
		if (send_frame2(m, F_MEM, &start, sizeof(start), vm->mem + start, len))
			return -1;
		res->pages_sent += len / PAGE;
	}
	counts[0] = res->pages_sent;
	counts[1] = res->pages_skipped;
	return send_frame(m, F_MEM_DONE, counts, sizeof(counts));
}

static int send_vmce(struct vmm *vm, struct mig_conn *m, struct vmm_mig_result *res)
{
	struct vmce_err err;
	void *buf;
	size_t len;
	int rc;

	/* Hybrid mode: KVM's MCA registers are the live state; the vCPUs are parked. */
	for (unsigned i = 0; vm->hybrid && i < vm->nr_vcpus; i++)
		if (vm->vcpu[i].kv && vmce_kvm_sync_from_kernel(vm->vcpu[i].kv, &err))
			return mig_fail(m, "vCPU %u: %s", i, err.msg);
	if (vmce_save_alloc(vm->vmce, &buf, &len, &err))
		return mig_fail(m, "vmce_save: %s", err.msg);
	res->vmce_bytes = len;
	rc = send_frame(m, F_VMCE, buf, len);
	free(buf);
	if (rc)
		return -1;
	return recv_reply(m, "vmce state");
}

/* Test hook: VMCE_VM_TEST_MIGRATE_INJECT=GPA[@CPU] injects an SRAO at GPA on the source after
 * the first vmce stream was sent, i.e. between vmce_migration_begin() and _end(); with @CPU, a
 * local one (LMCE, when the guest enabled it) on that vCPU. */
static void test_inject_during(struct vmm *vm)
{
	const char *s = getenv("VMCE_VM_TEST_MIGRATE_INJECT");
	struct vmce_host_error he;
	struct vmce_err err;
	char *end;
	uint64_t gpa;

	if (!s || !*s)
		return;
	vmce_host_error_init(&he);
	he.vcpu = 0;
	errno = 0;
	gpa = strtoull(s, &end, 0);
	if (*end == '@') {
		unsigned long cpu = strtoul(end + 1, &end, 10);

		if (cpu >= vm->nr_vcpus)
			errno = ERANGE;
		he.vcpu = (int)cpu;
		he.local = true;
	}
	if (errno || *end || gpa >= vm->mem_size) {
		fprintf(stderr, "vmce-vm: VMCE_VM_TEST_MIGRATE_INJECT=%s: not a guest address\n",
			s);
		return;
	}
	he.origin = VMCE_ORIGIN_INJECT;
	he.cls = VMCE_CLASS_SRAO;
	he.addr_kind = VMCE_ADDR_GPA;
	he.addr = gpa;
	if (vmce_kvm_inject(vm->kvm, &he, NULL, &err) < 0)
		fprintf(stderr, "vmce-vm: test injection during migration: %s\n", err.msg);
	else
		fprintf(stderr, "vmce-vm: test: SRAO at 0x%" PRIx64 " injected during migration\n",
			gpa);
}

int vmm_migrate_out(struct vmm *vm, const char *to, bool abort_on_error, struct vmm_mig_result *res)
{
	static struct msrs_buf msrs;
	struct mig_conn m = {.fd = -1};
	union mig_addr a;
	socklen_t alen;
	struct mig_hello hello;
	struct mig_vcpu v;
	struct vmce_err err;
	struct vmce_migration_result mr;
	bool begun = false, paused = false, done = false;
	uint64_t t0 = vmm_now_ns(), tp = 0;

	memset(res, 0, sizeof(*res));
	if (vmm_mig_parse_addr(to, &a, &alen, res->reason, sizeof(res->reason)))
		return -1;
	m.fd = socket(a.sa.sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (m.fd < 0) {
		snprintf(res->reason, sizeof(res->reason), "socket: %s", strerror(errno));
		return -1;
	}
	set_timeouts(m.fd);
	if (connect(m.fd, &a.sa, alen) < 0) {
		snprintf(res->reason, sizeof(res->reason), "cannot connect to %s: %s", to,
			 strerror(errno));
		close(m.fd);
		return -1;
	}
	/* 1. The guest's profile first: the destination refuses early if it cannot back it. */
	memset(&hello, 0, sizeof(hello));
	hello.magic = MIG_MAGIC;
	hello.version = MIG_VERSION;
	hello.nr_vcpus = vm->nr_vcpus;
	hello.mem_size = vm->mem_size;
	vmce_profile_format(vmce_vm_profile(vm->vmce), hello.profile, sizeof(hello.profile));
	if (send_frame(&m, F_HELLO, &hello, sizeof(hello)) || recv_reply(&m, "hello"))
		goto fail;
	if (vmce_migration_begin(vm->vmce, &err)) {
		mig_fail(&m, "vmce_migration_begin: %s", err.msg);
		goto fail;
	}
	begun = true;
	/* 2. Stop and copy: park the vCPUs, send memory (poisoned pages skipped), vCPU state. */
	if (pause_vcpus(vm, m.err, sizeof(m.err)))
		goto fail;
	paused = true;
	tp = vmm_now_ns();
	if (send_memory(vm, &m, res))
		goto fail;
	for (unsigned i = 0; i < vm->nr_vcpus; i++) {
		if (get_vcpu(vm, i, &v, &msrs, m.err, sizeof(m.err)))
			goto fail;
		if (send_frame2(&m, F_VCPU, &v, sizeof(v), msrs.e,
				v.nmsrs * sizeof(struct kvm_msr_entry)))
			goto fail;
	}
	/* 3. The vmce state; resent as long as errors were forwarded after the last save. */
	if (send_vmce(vm, &m, res))
		goto fail;
	test_inject_during(vm);
	for (;;) {
		if (vmce_migration_end(
			    vm->vmce, abort_on_error ? VMCE_MIGRATION_ABORT : VMCE_MIGRATION_RESEND,
			    &mr, &err)) {
			mig_fail(&m, "vmce_migration_end: %s", err.msg);
			goto fail;
		}
		if (mr.outcome == VMCE_MIGRATION_COMPLETE)
			break;
		if (mr.outcome == VMCE_MIGRATION_ABORTED) {
			begun = false;
			mig_fail(&m,
				 "aborted: %" PRIu64 " error(s) forwarded during the migration "
				 "(events %" PRIu64 "-%" PRIu64 "); the guest stays here",
				 mr.unsent, mr.first_seq, mr.last_seq);
			res->aborted = true;
			goto fail;
		}
		res->resends++;
		if (send_vmce(vm, &m, res))
			goto fail;
	}
	begun = false;
	/* 4. Commit: from the destination's answer on, the guest runs there.  A VM told to stop
	 * meanwhile (SIGTERM, --timeout) does not hand its guest over. */
	if (atomic_load(&vm->stopped)) {
		mig_fail(&m, "the VM is stopping: migration cancelled before the commit");
		goto fail;
	}
	if (send_frame(&m, F_COMMIT, NULL, 0) || recv_reply(&m, "commit")) {
		/* The migration is over in vmce's view; the guest was never started at the
		 * destination if it answered nothing: keep running here. */
		goto fail;
	}
	done = true;
	res->bytes = m.bytes_out;
	res->total_ms = (double)(vmm_now_ns() - t0) / 1e6;
	res->downtime_ms = (double)(vmm_now_ns() - tp) / 1e6;
	close(m.fd);
	return 0;
fail:
	if (!done) {
		snprintf(res->reason, sizeof(res->reason), "%s", m.err);
		if (m.fd >= 0)
			(void)send_frame(&m, F_ABORT, NULL, 0);
		if (begun)
			vmce_migration_abort(vm->vmce, NULL);
		if (paused)
			vmm_resume_vcpus(vm);
	}
	res->bytes = m.bytes_out;
	if (m.fd >= 0)
		close(m.fd);
	return -1;
}

/* ---- destination ---------------------------------------------------------------------------- */

static int listen_on(const char *addr_text, union mig_addr *a, socklen_t alen)
{
	struct stat st;
	int fd, one = 1;

	fd = socket(a->sa.sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (a->sa.sa_family == AF_UNIX) {
		if (lstat(a->un.sun_path, &st) == 0) {
			if (!S_ISSOCK(st.st_mode)) {
				fprintf(stderr,
					"vmce-vm: --incoming %s: exists and is not a socket\n",
					addr_text);
				close(fd);
				errno = EEXIST;
				return -1;
			}
			unlink(a->un.sun_path);
		}
	} else {
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	}
	if (bind(fd, &a->sa, alen) < 0 || listen(fd, 1) < 0) {
		int e = errno;

		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

static bool sigterm_pending(void)
{
	sigset_t s;

	sigemptyset(&s);
	sigaddset(&s, SIGINT);
	sigaddset(&s, SIGTERM);
	return sigtimedwait(&s, NULL, &(struct timespec){0, 0}) > 0;
}

/* Receive one VMCE frame into a malloc'd buffer. */
static int recv_vmce(struct mig_conn *m, const struct mig_hdr *h, void **buf)
{
	*buf = malloc(h->len ? (size_t)h->len : 1);
	if (!*buf)
		return mig_fail(m, "out of memory for a %" PRIu64 "-byte vmce stream", h->len);
	if (read_all(m, *buf, (size_t)h->len)) {
		free(*buf);
		*buf = NULL;
		return -1;
	}
	return 0;
}

/* Validate a vmce stream against what this destination backs and restore it. */
static int take_vmce(struct vmm *vm, struct mig_conn *m, const struct vmce_profile *backing,
		     const void *buf, size_t len)
{
	struct vmce_err err;

	if (vmce_restore_check(backing, buf, len, &err))
		return mig_fail(m, "vmce_restore_check: %s", err.msg);
	if (vmce_restore(vm->vmce, buf, len, &err))
		return mig_fail(m, "vmce_restore: %s", err.msg);
	return 0;
}

/*
 * Keep every poisoned page out of the guest's memory slots: guest RAM becomes one KVM memory slot
 * per run of healthy pages, so that a guest access to a poisoned page is an MMIO exit with its
 * exact address (vcpu.c turns it into an SRAR on the touching vCPU).  Unprotected before the
 * first KVM_RUN only: runs when the vmce state was restored (again after a resend).
 */
static int protect_poisoned(struct vmm *vm, struct mig_conn *m)
{
	uint64_t pages[MIG_MAX_HOLES];
	size_t n = vmce_poison_list(vm->vmce, pages, MIG_MAX_HOLES, true, 0);
	uint64_t start = 0;
	unsigned slot = 0;

	if (vmce_poison_count(vm->vmce) > MIG_MAX_HOLES)
		return mig_fail(m,
				"%zu poisoned pages: this VMM keeps at most %d out of the guest's "
				"memory",
				vmce_poison_count(vm->vmce), MIG_MAX_HOLES);
	for (unsigned i = 0; i < vm->nr_slots; i++) {
		struct kvm_userspace_memory_region r = {.slot = i};

		if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &r) < 0)
			return mig_fail(m, "deleting memory slot %u: %s", i, strerror(errno));
	}
	for (size_t i = 0; i <= n; i++) {
		uint64_t end = i < n ? pages[i] : vm->mem_size;
		struct kvm_userspace_memory_region r;

		if (i < n && pages[i] >= vm->mem_size)
			return mig_fail(m, "poisoned page 0x%" PRIx64 " outside guest memory",
					pages[i]);
		if (end > start) {
			memset(&r, 0, sizeof(r));
			r.slot = slot;
			r.guest_phys_addr = start;
			r.memory_size = end - start;
			r.userspace_addr = (uintptr_t)(vm->mem + start);
			if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &r) < 0)
				return mig_fail(m,
						"memory slot %u (0x%" PRIx64 "-0x%" PRIx64 "): %s",
						slot, start, end, strerror(errno));
			slot++;
		}
		start = end + PAGE;
	}
	vm->nr_slots = slot;
	return 0;
}

/* Every page the source did not send must be poisoned (it skipped it for that reason only). */
static int check_skipped(struct vmm *vm, struct mig_conn *m, const uint8_t *got)
{
	for (uint64_t p = 0; p < vm->mem_size / PAGE; p++)
		if (!(got[p / 8] & (1u << (p % 8))) && !vmce_poison_contains(vm->vmce, p * PAGE))
			return mig_fail(m,
					"memory: page 0x%" PRIx64
					" was not sent and is not poisoned in the vmce state",
					p * PAGE);
	return 0;
}

/*
 * --incoming: accept one source, build the VM from what it sends, and return 0 once the source
 * committed (the caller then starts the vCPUs).  Nothing runs before the commit; any error
 * returns -1 with the reason printed (the process then exits non-zero).
 */
int vmm_migrate_in(struct vmm *vm, const char *addr_text)
{
	static struct msrs_buf msrs;
	struct vmce_profile backing = vm->profile, guest;
	struct mig_conn m = {.fd = -1};
	union mig_addr a;
	socklen_t alen;
	struct mig_hello hello;
	struct mig_hdr h;
	struct vmce_err err;
	bool *seen = NULL;
	uint8_t *got = NULL; /* one bit per guest page received */
	void *buf = NULL;
	int lfd, rc = -1;
	uint64_t pages = 0;
	char why[MIG_MAX_REASON];

	uint64_t t0 = vmm_now_ns();

	if (vmm_mig_parse_addr(addr_text, &a, &alen, why, sizeof(why))) {
		fprintf(stderr, "vmce-vm: --incoming %s: %s\n", addr_text, why);
		return -2;
	}
	lfd = listen_on(addr_text, &a, alen);
	if (lfd < 0) {
		fprintf(stderr, "vmce-vm: --incoming %s: %s\n", addr_text, strerror(errno));
		return -1;
	}
	fprintf(stderr, "vmce-vm: waiting for a migration on %s\n", addr_text);
	for (;;) {
		struct pollfd p = {lfd, POLLIN, 0};

		if (sigterm_pending()) {
			fprintf(stderr, "vmce-vm: stopped while waiting for a migration\n");
			goto out_listen;
		}
		if (vm->timeout > 0 && (double)(vmm_now_ns() - t0) / 1e9 > vm->timeout) {
			fprintf(stderr,
				"vmce-vm: --timeout of %g s expired while waiting for a "
				"migration\n",
				vm->timeout);
			rc = -3;
			goto out_listen;
		}
		if (poll(&p, 1, 200) > 0)
			break;
	}
	m.fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (m.fd < 0) {
		fprintf(stderr, "vmce-vm: accept: %s\n", strerror(errno));
		goto out_listen;
	}
	set_timeouts(m.fd);

	/* 1. Hello: can this host back the guest? */
	if (recv_hdr(&m, 1u << F_HELLO, sizeof(hello), &h))
		goto fail;
	if (h.len != sizeof(hello)) {
		mig_fail(&m, "protocol error: hello frame of %" PRIu64 " bytes, expected %zu",
			 h.len, sizeof(hello));
		goto fail;
	}
	if (read_all(&m, &hello, sizeof(hello)))
		goto fail;
	hello.profile[sizeof(hello.profile) - 1] = '\0';
	if (hello.magic != MIG_MAGIC || hello.version != MIG_VERSION) {
		mig_fail(&m, "hello: not a vmce-vm migration of version %d", MIG_VERSION);
		goto refuse;
	}
	if (hello.nr_vcpus < 1 || hello.nr_vcpus > VMM_MAX_VCPUS) {
		mig_fail(&m, "hello: nr_vcpus %u out of range (1 to %d)", hello.nr_vcpus,
			 VMM_MAX_VCPUS);
		goto refuse;
	}
	if (hello.mem_size < (4ull << 20) || hello.mem_size > (3ull << 30) ||
	    (hello.mem_size & (PAGE - 1))) {
		mig_fail(&m, "hello: mem_size 0x%" PRIx64 " out of range", hello.mem_size);
		goto refuse;
	}
	if (vmce_profile_parse(hello.profile, &guest, &err) ||
	    vmce_profile_validate(&guest, &err)) {
		mig_fail(&m, "hello: profile: %s", err.msg);
		goto refuse;
	}
	if (vmce_profile_can_back(&backing, &guest, &err)) {
		char text[128];

		vmce_profile_format(&backing, text, sizeof(text));
		mig_fail(&m, "this host (--profile %s) cannot back the guest (%s): %s", text,
			 hello.profile, err.msg);
		goto refuse;
	}
	vm->profile = guest;
	vm->nr_vcpus = hello.nr_vcpus;
	vm->mem_size = hello.mem_size;
	if (vmm_setup(vm)) {
		mig_fail(&m, "cannot set up the destination VM (see its stderr)");
		goto refuse;
	}
	vmce_set_event_callback(vm->vmce, vm->on_event, vm);
	if (send_reply(&m, true, "ready for memory"))
		goto fail;

	/* 2. Memory. */
	got = calloc(vm->mem_size / PAGE / 8 + 1, 1);
	if (!got) {
		mig_fail(&m, "out of memory");
		goto fail;
	}
	for (;;) {
		uint64_t gpa;

		if (recv_hdr(&m, 1u << F_MEM | 1u << F_MEM_DONE | 1u << F_ABORT,
			     sizeof(gpa) + MIG_MEM_CHUNK, &h))
			goto fail;
		if (h.type == F_ABORT) {
			mig_fail(&m, "the source aborted the migration");
			goto fail;
		}
		if (h.type == F_MEM_DONE) {
			uint64_t counts[2];

			if (h.len != sizeof(counts) || read_all(&m, counts, sizeof(counts))) {
				mig_fail(&m, "protocol error: mem-done frame");
				goto fail;
			}
			if (counts[0] != pages || counts[0] + counts[1] != vm->mem_size / PAGE) {
				mig_fail(&m,
					 "memory: %" PRIu64
					 " pages received, the source says %" PRIu64
					 " sent and %" PRIu64 " skipped of %" PRIu64,
					 pages, counts[0], counts[1],
					 (uint64_t)(vm->mem_size / PAGE));
				goto fail;
			}
			break;
		}
		if (h.len <= sizeof(gpa) || (h.len - sizeof(gpa)) % PAGE) {
			mig_fail(&m, "protocol error: mem frame of %" PRIu64 " bytes", h.len);
			goto fail;
		}
		if (read_all(&m, &gpa, sizeof(gpa)))
			goto fail;
		if ((gpa & (PAGE - 1)) || gpa >= vm->mem_size ||
		    h.len - sizeof(gpa) > vm->mem_size - gpa) {
			mig_fail(&m,
				 "memory: range 0x%" PRIx64 "+0x%" PRIx64
				 " is not page-aligned inside guest memory",
				 gpa, h.len - sizeof(gpa));
			goto fail;
		}
		for (uint64_t p = gpa / PAGE; p < (gpa + h.len - sizeof(gpa)) / PAGE; p++) {
			if (got[p / 8] & (1u << (p % 8))) {
				mig_fail(&m, "memory: page 0x%" PRIx64 " received twice", p * PAGE);
				goto fail;
			}
			got[p / 8] |= (uint8_t)(1u << (p % 8));
		}
		if (read_all(&m, vm->mem + gpa, (size_t)(h.len - sizeof(gpa))))
			goto fail;
		pages += (h.len - sizeof(gpa)) / PAGE;
	}
	if (getenv("VMCE_VM_TEST_EXIT_AFTER_MEMORY")) {
		fprintf(stderr, "vmce-vm: test: exiting after the memory was received\n");
		_exit(VMM_EXIT_ERROR);
	}

	/* 3. vCPU states, each exactly once. */
	seen = calloc(vm->nr_vcpus, sizeof(*seen));
	if (!seen) {
		mig_fail(&m, "out of memory");
		goto fail;
	}
	for (unsigned k = 0; k < vm->nr_vcpus; k++) {
		struct mig_vcpu v;
		uint64_t extra;

		if (recv_hdr(&m, 1u << F_VCPU | 1u << F_ABORT,
			     sizeof(v) + MIG_MAX_MSRS * sizeof(struct kvm_msr_entry), &h))
			goto fail;
		if (h.type == F_ABORT) {
			mig_fail(&m, "the source aborted the migration");
			goto fail;
		}
		if (h.len < sizeof(v) || read_all(&m, &v, sizeof(v))) {
			mig_fail(&m, "protocol error: vcpu frame of %" PRIu64 " bytes", h.len);
			goto fail;
		}
		extra = h.len - sizeof(v);
		if (v.index >= vm->nr_vcpus || seen[v.index]) {
			mig_fail(&m, "vcpu: index %u out of range or repeated", v.index);
			goto fail;
		}
		if (v.nmsrs > MIG_MAX_MSRS || extra != v.nmsrs * sizeof(struct kvm_msr_entry) ||
		    (v.flags & ~(VF_XSAVE | VF_XCRS)) || v.pad) {
			mig_fail(&m, "vcpu %u: %u MSRs in %" PRIu64 " bytes, flags 0x%x: malformed",
				 v.index, v.nmsrs, extra, v.flags);
			goto fail;
		}
		if (read_all(&m, msrs.e, (size_t)extra))
			goto fail;
		for (unsigned j = 0; j < v.nmsrs; j++)
			if (mca_msr(msrs.e[j].index) || msrs.e[j].reserved) {
				mig_fail(&m, "vcpu %u: MSR 0x%x is not one that travels", v.index,
					 msrs.e[j].index);
				goto fail;
			}
		seen[v.index] = true;
		if (set_vcpu(vm, &v, &msrs, why, sizeof(why))) {
			mig_fail(&m, "%s", why);
			goto refuse;
		}
	}

	/* 4. The vmce stream, then commit (or a resend, or an abort). */
	if (recv_hdr(&m, 1u << F_VMCE | 1u << F_ABORT, VMCE_STREAM_MAX_LEN, &h))
		goto fail;
	for (;;) {
		if (h.type == F_ABORT) {
			mig_fail(&m, "the source aborted the migration");
			goto fail;
		}
		if (h.type == F_COMMIT) {
			if (h.len) {
				mig_fail(&m, "protocol error: commit frame with data");
				goto fail;
			}
			break;
		}
		if (recv_vmce(&m, &h, &buf))
			goto fail;
		if (take_vmce(vm, &m, &backing, buf, (size_t)h.len) || check_skipped(vm, &m, got) ||
		    protect_poisoned(vm, &m)) {
			free(buf);
			buf = NULL;
			goto refuse;
		}
		free(buf);
		buf = NULL;
		if (send_reply(&m, true, "vmce state restored"))
			goto fail;
		if (recv_hdr(&m, 1u << F_VMCE | 1u << F_COMMIT | 1u << F_ABORT, VMCE_STREAM_MAX_LEN,
			     &h))
			goto fail;
	}
	if (send_reply(&m, true, "running"))
		goto fail;
	fprintf(stderr,
		"vmce-vm: migration received: %" PRIu64 " pages, %zu poisoned, %u vCPU(s); "
		"running\n",
		pages, vmce_poison_count(vm->vmce), vm->nr_vcpus);
	rc = 0;
	goto out;
refuse:
	/* Tell the source why; a source that is gone already does not change the reason. */
	memcpy(why, m.err, sizeof(why));
	(void)send_reply(&m, false, why);
	memcpy(m.err, why, sizeof(m.err));
fail:
	fprintf(stderr, "vmce-vm: incoming migration failed: %s\n", m.err);
	rc = -1;
out:
	free(seen);
	free(got);
	if (m.fd >= 0)
		close(m.fd);
out_listen:
	close(lfd);
	if (a.sa.sa_family == AF_UNIX)
		unlink(a.un.sun_path);
	return rc;
}
