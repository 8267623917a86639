/* SPDX-License-Identifier: MIT */
/*
 * control_req.h - one request of the control protocol (docs/control-protocol.md): a line
 * parsed with jansson into a flat object of scalars within the bounds of common/control_proto.h,
 * and typed access to its fields.  Every refusal fills r->err with the documented sentence
 * naming the field (and, for syntax errors, the byte).
 */
#ifndef VMM_CONTROL_REQ_H
#define VMM_CONTROL_REQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "control_proto.h"
#include "vmm.h"

struct ctl_req {
	json_t *obj;	 /* the request object */
	const char *cmd; /* its "cmd", once dispatched */
	json_t *id;	 /* its "id" when valid, else NULL */
	/* Members a handler looked at (each once); any other member is unknown. */
	const char *used[CTL_MAX_FIELDS];
	size_t nused;
	struct vmm_err err;
};

/* Parse buf[0..len) (no newline).  0, or -1 with r->err set; ctl_req_free() either way. */
int ctl_req_parse(struct ctl_req *r, const char *buf, size_t len);
void ctl_req_free(struct ctl_req *r);

/* The member key (NULL when absent), marked as used. */
json_t *ctl_req_get(struct ctl_req *r, const char *key);
/* Typed fields: 0 (absent: *present false / *out = def / *out NULL), or -1 with r->err. */
int ctl_req_u64(struct ctl_req *r, const char *key, bool *present, uint64_t *out);
int ctl_req_bool(struct ctl_req *r, const char *key, bool def, bool *out);
int ctl_req_str(struct ctl_req *r, const char *key, json_t **out);
/* After a handler took its fields: -1 naming the first member it did not take. */
int ctl_req_check_unknown(struct ctl_req *r);

/* Rate limits: a token bucket of `rate` per second and as much burst, at time now (ns): true
 * when a token was taken. */
bool ctl_bucket_take(double *tokens, uint64_t *last_ns, uint64_t now, double rate);

#endif
