/* SPDX-License-Identifier: MIT */
/*
 * control.h - the control server's insides, shared by its files: the connections and their
 * output queues (control.c) and the commands (control_cmd.c, which calls control.c nothing
 * back).  Requests and rate limits: control_req.h.
 */
#ifndef VMM_CONTROL_H
#define VMM_CONTROL_H

#include <jansson.h>

#include "control_req.h"
#include "vmm.h"

/* A bounded output queue: appending past the limit sets overflow (the connection closes). */
struct sbuf {
	char *buf;
	size_t len, cap, limit;
	bool overflow;
};

void sbuf_init(struct sbuf *s, size_t limit);
void sbuf_free(struct sbuf *s);
void sbuf_put(struct sbuf *s, const char *data, size_t len);
/* obj as one line (compact JSON and '\n'). */
void sbuf_put_json(struct sbuf *s, const json_t *obj);

struct conn {
	int fd;
	char in[CTL_MAX_LINE + 1];
	size_t in_len;
	bool discarding; /* dropping the rest of an over-long line */
	struct sbuf out; /* pending output */
	size_t out_off;	 /* bytes of out already sent */
	bool following;
	uint64_t follow_after;
	bool closing; /* close once the output is flushed */
	double tokens;
	uint64_t tokens_ns;
};

struct control {
	struct vmm *vm;
	int listen_fd;
	pthread_t thread;
	bool thread_started;
	atomic_bool finishing;
	struct conn *conns[CTL_MAX_CONNS];
	double inj_tokens;
	uint64_t inj_tokens_ns;
	struct vmce_event *evbuf; /* CTL_EVENTS_MAX events */
};

/*
 * A command: its handler adds its fields to resp (which has "ok":true and the request's "id")
 * and returns 0, or returns -1 with r->err set (the response becomes an error).
 */
struct ctl_cmd {
	const char *name;
	int (*handler)(struct control *c, struct conn *cn, struct ctl_req *r, json_t *resp);
	bool needs_running; /* refused once the guest stopped ("the VM is shutting down") */
};

/* The command named name, or NULL. */
const struct ctl_cmd *ctl_cmd_find(const char *name);
/* Write an event (vmce's JSON) as one line to a following connection. */
void ctl_put_event_line(struct sbuf *s, const struct vmce_event *ev);

#endif
