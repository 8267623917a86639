// SPDX-License-Identifier: MIT
/*
 * The wire of vmce-vm's live migration (mig.h): addresses, frames, replies, and the vCPU state
 * as it travels.  Used by both directions (mig_out.c, mig_in.c).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "mig.h"

static const char *const frame_names[F_MAX] = {"?",    "hello", "reply",  "mem",  "mem-done",
					       "vcpu", "vmce",	"commit", "abort"};

/* ---- addresses ------------------------------------------------------------------------------ */

int mig_parse_addr(const char *s, union mig_addr *a, socklen_t *alen, struct vmm_err *err)
{
	const char *colon;
	bool loopback;
	char host[64];
	unsigned long port;
	char *end;

	memset(a, 0, sizeof(*a));
	if (!s || !*s)
		return vmm_fail(err, "empty address");
	if (!strncmp(s, "unix:", 5) || (strchr(s, '/') && s[0] != '[') || !strchr(s, ':')) {
		const char *p = strncmp(s, "unix:", 5) ? s : s + 5;

		if (!*p || strlen(p) >= sizeof(a->un.sun_path))
			return vmm_fail(err, "UNIX socket path empty or longer than %zu bytes",
					sizeof(a->un.sun_path) - 1);
		a->un.sun_family = AF_UNIX;
		strcpy(a->un.sun_path, p);
		*alen = sizeof(a->un);
		return 0;
	}
	colon = strrchr(s, ':');
	if (!colon || colon == s || (size_t)(colon - s) >= sizeof(host))
		return vmm_fail(
			err, "'%.64s' is neither a UNIX socket path nor a loopback HOST:PORT", s);
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = '\0';
	errno = 0;
	port = strtoul(colon + 1, &end, 10);
	if (errno || end == colon + 1 || *end || port < 1 || port > 65535)
		return vmm_fail(err, "port '%.16s' is not a number from 1 to 65535", colon + 1);
	if (!strcmp(host, "localhost"))
		strcpy(host, "127.0.0.1");
	if (inet_pton(AF_INET, host, &a->in.sin_addr) == 1) {
		loopback = (ntohl(a->in.sin_addr.s_addr) >> 24) == 127;
		a->in.sin_family = AF_INET;
		a->in.sin_port = htons((uint16_t)port);
		*alen = sizeof(a->in);
	} else {
		if (host[0] == '[' && host[strlen(host) - 1] == ']') {
			memmove(host, host + 1, strlen(host));
			host[strlen(host) - 1] = '\0';
		}
		if (inet_pton(AF_INET6, host, &a->in6.sin6_addr) != 1)
			return vmm_fail(err,
					"host '%.64s' is not an IP address or localhost (loopback "
					"only)",
					host);
		loopback = IN6_IS_ADDR_LOOPBACK(&a->in6.sin6_addr);
		a->in6.sin6_family = AF_INET6;
		a->in6.sin6_port = htons((uint16_t)port);
		*alen = sizeof(a->in6);
	}
	if (!loopback)
		return vmm_fail(
			err,
			"%s is not a loopback address (migration runs over UNIX or loopback "
			"TCP sockets only)",
			host);
	return 0;
}

void mig_set_timeouts(int fd)
{
	struct timeval tv = {MIG_IO_TIMEOUT_S, 0};
	int one = 1;

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* ---- framing -------------------------------------------------------------------------------- */

static int write_all(struct mig_conn *m, const void *p, size_t n)
{
	const uint8_t *b = p;

	while (n) {
		ssize_t w = send(m->fd, b, n, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return vmm_fail(&m->err, "sending to the peer: %s",
					w < 0 ? strerror(errno) : "connection closed");
		b += w;
		n -= (size_t)w;
		m->bytes_out += (uint64_t)w;
	}
	return 0;
}

int mig_read(struct mig_conn *m, void *p, size_t n)
{
	uint8_t *b = p;

	while (n) {
		ssize_t r = recv(m->fd, b, n, 0);

		if (r < 0 && errno == EINTR)
			continue;
		if (r == 0)
			return vmm_fail(&m->err, "the peer closed the connection");
		if (r < 0)
			return vmm_fail(&m->err, "receiving from the peer: %s",
					errno == EAGAIN ? "timed out" : strerror(errno));
		b += r;
		n -= (size_t)r;
		m->bytes_in += (uint64_t)r;
	}
	return 0;
}

int mig_send2(struct mig_conn *m, uint32_t type, const void *a, size_t alen, const void *b,
	      size_t blen)
{
	struct mig_hdr h = {type, 0, (uint64_t)alen + blen};

	if (write_all(m, &h, sizeof(h)) || (alen && write_all(m, a, alen)) ||
	    (blen && write_all(m, b, blen)))
		return -1;
	return 0;
}

int mig_send(struct mig_conn *m, uint32_t type, const void *p, size_t len)
{
	return mig_send2(m, type, p, len, NULL, 0);
}

int mig_recv_hdr(struct mig_conn *m, uint32_t allowed, uint64_t max, struct mig_hdr *h)
{
	if (mig_read(m, h, sizeof(*h)))
		return -1;
	if (h->type == 0 || h->type >= F_MAX || !(allowed & (1u << h->type)))
		return vmm_fail(&m->err, "protocol error: unexpected frame type %u", h->type);
	if (h->reserved)
		return vmm_fail(&m->err, "protocol error: %s frame: reserved field is 0x%x, not 0",
				frame_names[h->type], h->reserved);
	if (h->len > max)
		return vmm_fail(&m->err,
				"protocol error: %s frame of %" PRIu64 " bytes (at most %" PRIu64
				")",
				frame_names[h->type], h->len, max);
	return 0;
}

int mig_send_reply(struct mig_conn *m, bool ok, const char *reason)
{
	uint32_t v = ok;
	size_t n = strnlen(reason, MIG_MAX_REASON - 1);

	return mig_send2(m, F_REPLY, &v, sizeof(v), reason, n);
}

int mig_recv_reply(struct mig_conn *m, const char *step)
{
	struct mig_hdr h;
	char reason[MIG_MAX_REASON];
	uint32_t ok;
	size_t n;

	if (mig_recv_hdr(m, 1u << F_REPLY, sizeof(ok) + MIG_MAX_REASON - 1, &h))
		return -1;
	if (h.len < sizeof(ok))
		return vmm_fail(&m->err, "protocol error: reply frame of %" PRIu64 " bytes", h.len);
	n = (size_t)h.len - sizeof(ok);
	if (mig_read(m, &ok, sizeof(ok)) || mig_read(m, reason, n))
		return -1;
	reason[n] = '\0';
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)reason[i] < 0x20 || (unsigned char)reason[i] > 0x7e)
			reason[i] = '?';
	if (ok > 1)
		return vmm_fail(&m->err, "protocol error: reply status %u", ok);
	if (!ok)
		return vmm_fail(&m->err, "the destination refused (%s): %s", step, reason);
	return 0;
}

/* ---- vCPU state ----------------------------------------------------------------------------- */

bool mig_mca_msr(uint32_t i)
{
	return (i >= 0x179 && i <= 0x17b) || (i >= 0x280 && i <= 0x29f) ||
	       (i >= 0x400 && i <= 0x47f) || i == 0x4d0;
}

/* The MSRs that travel: KVM_GET_MSR_INDEX_LIST minus the MCA MSRs (the vmce stream carries
 * them), keeping those this vCPU can read. */
static int msr_list(struct vmm *vm, int vcpu_fd, struct mig_msrs *out)
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

		if (mig_mca_msr(l->indices[i]))
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

int mig_get_vcpu(struct vmm *vm, unsigned i, struct mig_vcpu *v, struct mig_msrs *msrs,
		 struct vmm_err *err)
{
	int fd = vm->vcpu[i].fd;

	memset(v, 0, sizeof(*v));
	v->index = i;
#define GET(req, p)                                                                                \
	do {                                                                                       \
		if (ioctl(fd, req, p) < 0)                                                         \
			return vmm_fail(err, "vCPU %u: " #req ": %s", i, strerror(errno));         \
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
	if (msr_list(vm, fd, msrs))
		return vmm_fail(err, "vCPU %u: KVM_GET_MSR_INDEX_LIST: %s", i, strerror(errno));
	if (ioctl(fd, KVM_GET_MSRS, msrs) != (int)msrs->nmsrs)
		return vmm_fail(err, "vCPU %u: KVM_GET_MSRS of %u MSRs failed", i, msrs->nmsrs);
	v->nmsrs = msrs->nmsrs;
	return 0;
}

int mig_set_vcpu(struct vmm *vm, const struct mig_vcpu *v, struct mig_msrs *msrs,
		 struct vmm_err *err)
{
	int fd = vm->vcpu[v->index].fd;
	int r;

#define SET(req, p)                                                                                \
	do {                                                                                       \
		if (ioctl(fd, req, p) < 0)                                                         \
			return vmm_fail(err, "vCPU %u: " #req ": %s", v->index, strerror(errno));  \
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
	if (r != (int)v->nmsrs)
		return vmm_fail(err, "vCPU %u: KVM_SET_MSRS refused MSR 0x%x (%d of %u set)",
				v->index, r >= 0 && (unsigned)r < v->nmsrs ? msrs->e[r].index : 0,
				r, v->nmsrs);
	SET(KVM_SET_MP_STATE, &v->mp);
	SET(KVM_SET_LAPIC, &v->lapic);
	SET(KVM_SET_VCPU_EVENTS, &v->events);
	SET(KVM_SET_DEBUGREGS, &v->debugregs);
#undef SET
	return 0;
}
