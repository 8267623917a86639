// SPDX-License-Identifier: MIT
/*
 * The control socket of vmce-vm: a UNIX stream socket, one JSON request per line, one JSON
 * response per line (docs/control-protocol.md).  One thread serves every connection with
 * poll(); every input is bounded, every request goes through the command table
 * (control_cmd.c) and every malformed one gets an error naming the problem.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "control.h"

#define FOLLOW_BATCH 64

static struct control ctl_store;

/* ---- output --------------------------------------------------------------------------------- */

void sbuf_init(struct sbuf *s, size_t limit)
{
	memset(s, 0, sizeof(*s));
	s->limit = limit;
}

void sbuf_free(struct sbuf *s)
{
	free(s->buf);
	memset(s, 0, sizeof(*s));
}

static bool sbuf_reserve(struct sbuf *s, size_t extra)
{
	size_t need = s->len + extra + 1;

	if (s->overflow)
		return false;
	if (need > s->limit) {
		s->overflow = true;
		return false;
	}
	if (need > s->cap) {
		size_t cap = s->cap ? s->cap : 256;
		char *nb;

		while (cap < need)
			cap *= 2;
		if (cap > s->limit)
			cap = s->limit;
		nb = realloc(s->buf, cap);
		if (!nb) {
			s->overflow = true;
			return false;
		}
		s->buf = nb;
		s->cap = cap;
	}
	return true;
}

void sbuf_put(struct sbuf *s, const char *data, size_t len)
{
	if (!sbuf_reserve(s, len))
		return;
	memcpy(s->buf + s->len, data, len);
	s->len += len;
	s->buf[s->len] = '\0';
}

void sbuf_put_json(struct sbuf *s, const json_t *obj)
{
	char *text = obj ? vmm_json_dump(obj) : NULL;

	if (!text) {
		s->overflow = true; /* out of memory: the connection closes */
		return;
	}
	sbuf_put(s, text, strlen(text));
	sbuf_put(s, "\n", 1);
	free(text);
}

void ctl_put_event_line(struct sbuf *s, const struct vmce_event *ev)
{
	char *text = vmm_event_text(ev);

	if (!text)
		return;
	sbuf_put(s, text, strlen(text));
	sbuf_put(s, "\n", 1);
	free(text);
}

/* {"ok":false,"id":...,"error":"..."} */
static void respond_error(struct sbuf *s, json_t *id, const char *msg)
{
	json_t *o = json_pack("{s:b}", CTL_F_OK, 0);

	if (o && id)
		json_object_set(o, CTL_F_ID, id);
	if (o)
		json_object_set_new(o, CTL_F_ERROR, vmm_json_text(msg));
	sbuf_put_json(s, o);
	json_decref(o);
}

/* ---- dispatch ------------------------------------------------------------------------------- */

static bool blank(const char *line, size_t len)
{
	for (size_t k = 0; k < len; k++)
		if (line[k] != ' ' && line[k] != '\t')
			return false;
	return true;
}

/* The id, the command, its handler: the response (or error) as JSON; NULL with r->err set. */
static json_t *run_request(struct control *c, struct conn *cn, struct ctl_req *r)
{
	const struct ctl_cmd *cmd;
	json_t *cmd_m, *resp;

	cmd_m = ctl_req_get(r, CTL_F_CMD);
	if (!cmd_m) {
		vmm_fail(&r->err, "missing field \"cmd\"");
		return NULL;
	}
	if (!json_is_string(cmd_m)) {
		vmm_fail(&r->err, "field \"cmd\" must be a string");
		return NULL;
	}
	r->cmd = json_string_value(cmd_m);
	cmd = ctl_cmd_find(r->cmd);
	if (!cmd) {
		vmm_fail(&r->err,
			 "unknown cmd \"%.64s\" (expected inject, status, events, migrate or quit)",
			 r->cmd);
		return NULL;
	}
	if (cmd->needs_running && atomic_load(&c->vm->stopped)) {
		vmm_fail(&r->err, "the VM is shutting down");
		return NULL;
	}
	resp = json_pack("{s:b}", CTL_F_OK, 1);
	if (resp && r->id)
		json_object_set(resp, CTL_F_ID, r->id);
	if (resp && cmd->handler(c, cn, r, resp)) {
		json_decref(resp);
		return NULL;
	}
	return resp;
}

static void handle_line(struct control *c, struct conn *cn, char *line, size_t len)
{
	struct sbuf *s = &cn->out;
	struct ctl_req r;
	json_t *id, *resp;

	while (len && (line[len - 1] == '\r'))
		len--;
	if (blank(line, len))
		return;
	if (!ctl_bucket_take(&cn->tokens, &cn->tokens_ns, vmm_now_ns(), CTL_REQ_RATE)) {
		snprintf(r.err.msg, sizeof(r.err.msg),
			 "rate limit: more than %d requests per second on this connection",
			 CTL_REQ_RATE);
		respond_error(s, NULL, r.err.msg);
		return;
	}
	if (cn->following) {
		respond_error(s, NULL,
			      "this connection is following events; use another connection for "
			      "requests");
		return;
	}
	if (ctl_req_parse(&r, line, len)) {
		respond_error(s, NULL, r.err.msg);
		goto out;
	}
	id = ctl_req_get(&r, CTL_F_ID);
	if (id && !json_is_number(id) &&
	    !(json_is_string(id) && json_string_length(id) <= CTL_MAX_ID_LEN)) {
		vmm_fail(&r.err, "field \"id\" must be a number or a string of at most %d bytes",
			 CTL_MAX_ID_LEN);
		respond_error(s, NULL, r.err.msg);
		goto out;
	}
	r.id = id;
	resp = run_request(c, cn, &r);
	if (resp)
		sbuf_put_json(s, resp);
	else
		respond_error(s, r.id, r.err.msg);
	json_decref(resp);
out:
	ctl_req_free(&r);
}

/* ---- connections ---------------------------------------------------------------------------- */

static void conn_close(struct control *c, int slot)
{
	struct conn *cn = c->conns[slot];

	close(cn->fd);
	sbuf_free(&cn->out);
	free(cn);
	c->conns[slot] = NULL;
}

static void conn_compact(struct conn *cn)
{
	if (cn->out_off == 0)
		return;
	memmove(cn->out.buf, cn->out.buf + cn->out_off, cn->out.len - cn->out_off);
	cn->out.len -= cn->out_off;
	cn->out_off = 0;
	cn->out.buf[cn->out.len] = '\0';
}

/* Returns -1 when the connection must be closed. */
static int conn_flush(struct conn *cn)
{
	while (cn->out_off < cn->out.len) {
		ssize_t w = send(cn->fd, cn->out.buf + cn->out_off, cn->out.len - cn->out_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);

		if (w < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			if (errno == EINTR)
				continue;
			return -1;
		}
		cn->out_off += (size_t)w;
	}
	if (cn->out_off == cn->out.len) {
		cn->out.len = 0;
		cn->out_off = 0;
	} else if (cn->out_off > (64u << 10)) {
		conn_compact(cn);
	}
	return 0;
}

static int conn_read(struct control *c, struct conn *cn)
{
	char buf[4096];
	ssize_t n = recv(cn->fd, buf, sizeof(buf), MSG_DONTWAIT);

	if (n == 0)
		return -1;
	if (n < 0)
		return (errno == EAGAIN || errno == EINTR) ? 0 : -1;
	for (ssize_t i = 0; i < n; i++) {
		char ch = buf[i];

		if (ch == '\n') {
			if (cn->discarding)
				cn->discarding = false;
			else
				handle_line(c, cn, cn->in, cn->in_len);
			cn->in_len = 0;
			if (cn->out.overflow)
				return -1;
			continue;
		}
		if (cn->discarding)
			continue;
		if (cn->in_len >= CTL_MAX_LINE - 1) {
			char msg[64];

			snprintf(msg, sizeof(msg), "request line too long (limit %u bytes)",
				 CTL_MAX_LINE);
			respond_error(&cn->out, NULL, msg);
			cn->discarding = true;
			cn->in_len = 0;
			continue;
		}
		cn->in[cn->in_len++] = ch;
	}
	return cn->out.overflow ? -1 : 0;
}

/* Write new events (and gaps) to a following connection, bounded by its output limit. */
static void pump_follower(struct control *c, struct conn *cn)
{
	struct vmm *vm = c->vm;

	while (cn->out.len - cn->out_off < CTL_OUT_LIMIT / 2) {
		size_t n = vmce_events_read(vm->vmce, cn->follow_after, c->evbuf, FOLLOW_BATCH);

		if (n == 0)
			break;
		if (c->evbuf[0].seq > cn->follow_after + 1) {
			json_t *lost = json_pack("{s:s, s:I, s:I}", "kind", "lost", CTL_F_AFTER,
						 (json_int_t)cn->follow_after, "next",
						 (json_int_t)c->evbuf[0].seq);

			sbuf_put_json(&cn->out, lost);
			json_decref(lost);
		}
		for (size_t i = 0; i < n; i++)
			ctl_put_event_line(&cn->out, &c->evbuf[i]);
		cn->follow_after = c->evbuf[n - 1].seq;
	}
}

static void accept_conn(struct control *c)
{
	int fd = accept4(c->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	struct conn *cn;
	int slot = -1;

	if (fd < 0)
		return;
	for (int i = 0; i < CTL_MAX_CONNS; i++)
		if (!c->conns[i]) {
			slot = i;
			break;
		}
	if (slot < 0) {
		struct sbuf s;
		char msg[64];

		snprintf(msg, sizeof(msg), "too many control connections (limit %d)",
			 CTL_MAX_CONNS);
		sbuf_init(&s, 256);
		respond_error(&s, NULL, msg);
		if (s.buf)
			(void)!send(fd, s.buf, s.len, MSG_NOSIGNAL | MSG_DONTWAIT);
		sbuf_free(&s);
		close(fd);
		return;
	}
	cn = calloc(1, sizeof(*cn));
	if (!cn) {
		close(fd);
		return;
	}
	cn->fd = fd;
	sbuf_init(&cn->out, CTL_OUT_LIMIT);
	c->conns[slot] = cn;
}

static void send_vm_exit(struct control *c)
{
	json_t *line = vmm_exit_json(c->vm);

	for (int i = 0; i < CTL_MAX_CONNS; i++) {
		struct conn *cn = c->conns[i];

		if (!cn || !cn->following)
			continue;
		pump_follower(c, cn);
		sbuf_put_json(&cn->out, line);
		cn->closing = true;
	}
	json_decref(line);
}

static void *control_thread(void *arg)
{
	struct control *c = arg;
	struct vmm *vm = c->vm;
	bool exit_sent = false;
	uint64_t finish_deadline = 0;

	for (;;) {
		struct pollfd pfd[CTL_MAX_CONNS + 2];
		int slot_of[CTL_MAX_CONNS + 2];
		nfds_t n = 0;
		bool finishing = atomic_load(&c->finishing);

		if (finishing && !exit_sent) {
			send_vm_exit(c);
			exit_sent = true;
		}
		for (int i = 0; i < CTL_MAX_CONNS; i++) {
			struct conn *cn = c->conns[i];

			if (!cn)
				continue;
			if (cn->following)
				pump_follower(c, cn);
			if (conn_flush(cn) || cn->out.overflow ||
			    (cn->closing && cn->out.len == 0)) {
				conn_close(c, i);
				continue;
			}
			pfd[n].fd = cn->fd;
			pfd[n].events = (cn->out.len ? POLLOUT : 0) | (finishing ? 0 : POLLIN);
			pfd[n].revents = 0;
			slot_of[n++] = i;
		}
		if (finishing) {
			bool pending = false;

			for (int i = 0; i < CTL_MAX_CONNS; i++)
				pending |= c->conns[i] && c->conns[i]->out.len > 0;
			if (!pending)
				break;
		}
		pfd[n].fd = c->listen_fd;
		pfd[n].events = finishing ? 0 : POLLIN;
		pfd[n].revents = 0;
		slot_of[n++] = -1;
		pfd[n].fd = vm->wake_fd;
		pfd[n].events = POLLIN;
		pfd[n].revents = 0;
		slot_of[n++] = -2;
		if (poll(pfd, n, finishing ? 100 : 1000) < 0 && errno != EINTR)
			break;
		for (nfds_t k = 0; k < n; k++) {
			if (!pfd[k].revents)
				continue;
			if (slot_of[k] == -1) {
				accept_conn(c);
			} else if (slot_of[k] == -2) {
				uint64_t v;

				(void)!read(vm->wake_fd, &v, sizeof(v));
			} else {
				struct conn *cn = c->conns[slot_of[k]];

				if (!cn)
					continue;
				if ((pfd[k].revents & (POLLIN | POLLHUP | POLLERR)) &&
				    conn_read(c, cn)) {
					/* Flush what can be flushed (e.g. an error) then close. */
					(void)conn_flush(cn);
					conn_close(c, slot_of[k]);
				}
			}
		}
		if (finishing) {
			/* Bounded: give slow readers at most about 2 s. */
			if (!finish_deadline)
				finish_deadline = vmm_now_ns() + 2000000000ull;
			else if (vmm_now_ns() > finish_deadline)
				break;
		}
	}
	for (int i = 0; i < CTL_MAX_CONNS; i++)
		if (c->conns[i])
			conn_close(c, i);
	return NULL;
}

int control_start(struct vmm *vm)
{
	struct control *c = &ctl_store;
	struct sockaddr_un addr;
	struct stat st;
	int r;

	memset(c, 0, sizeof(*c));
	c->vm = vm;
	c->listen_fd = -1;
	if (strlen(vm->control_path) >= sizeof(addr.sun_path)) {
		fprintf(stderr, "vmce-vm: --control %s: path longer than %zu bytes\n",
			vm->control_path, sizeof(addr.sun_path) - 1);
		return -1;
	}
	if (lstat(vm->control_path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			fprintf(stderr, "vmce-vm: --control %s: exists and is not a socket\n",
				vm->control_path);
			return -1;
		}
		unlink(vm->control_path);
	}
	c->evbuf = calloc(CTL_EVENTS_MAX, sizeof(*c->evbuf));
	if (!c->evbuf)
		return -1;
	c->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (c->listen_fd < 0) {
		fprintf(stderr, "vmce-vm: socket: %s\n", strerror(errno));
		return -1;
	}
	memset(&addr, 0, sizeof(addr));
	addr.sun_family = AF_UNIX;
	strcpy(addr.sun_path, vm->control_path);
	{
		mode_t old = umask(0177);

		r = bind(c->listen_fd, (struct sockaddr *)&addr, sizeof(addr));
		umask(old);
	}
	if (r < 0 || listen(c->listen_fd, 16) < 0) {
		fprintf(stderr, "vmce-vm: --control %s: %s\n", vm->control_path, strerror(errno));
		close(c->listen_fd);
		return -1;
	}
	r = pthread_create(&c->thread, NULL, control_thread, c);
	if (r) {
		fprintf(stderr, "vmce-vm: control thread: %s\n", strerror(r));
		close(c->listen_fd);
		unlink(vm->control_path);
		return -1;
	}
	c->thread_started = true;
	return 0;
}

void control_finish(struct vmm *vm)
{
	struct control *c = &ctl_store;

	if (!c->thread_started)
		return;
	atomic_store(&c->finishing, true);
	vmm_wake_control(vm);
	pthread_join(c->thread, NULL);
	c->thread_started = false;
	close(c->listen_fd);
	unlink(vm->control_path);
	free(c->evbuf);
	c->evbuf = NULL;
}
