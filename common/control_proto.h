/* SPDX-License-Identifier: MIT */
/*
 * The control protocol of vmce-vm, shared by the server (vmm/control.c), the client (vmcectl)
 * and the tests: command names, field names and the limits both sides must agree on.  The
 * protocol itself is described in docs/control-protocol.md; a change here is a change there.
 *
 * One JSON object per line each way.  Every request has "cmd" and may have "id" (echoed in the
 * response); every response has "ok" and, when ok is false, "error".
 */
#ifndef VMCE_CONTROL_PROTO_H
#define VMCE_CONTROL_PROTO_H

/* Limits of the server; the client checks the same before it sends. */
#define CTL_MAX_LINE	      8192u	   /* request line, newline included */
#define CTL_MAX_CONNS	      8		   /* connections served at once */
#define CTL_REQ_RATE	      500	   /* requests per second per connection (and burst) */
#define CTL_INJ_RATE	      1000	   /* injections per second per VM (and burst) */
#define CTL_MAX_ID_LEN	      64	   /* a string "id" */
#define CTL_MAX_TEXT	      4096	   /* inject "text": bytes */
#define CTL_MAX_TEXT_RECORDS  16	   /* inject "text": records */
#define CTL_EVENTS_MAX	      4096	   /* events "max" */
#define CTL_EVENTS_DEFAULT    256	   /* events "max" when absent */
#define CTL_MAX_MIGRATE_TO    200	   /* migrate "to": bytes */
#define CTL_OUT_LIMIT	      (1u << 20)   /* output queued per connection */
#define CTL_RESPONSE_SOFT_MAX (900u << 10) /* an events page stops growing here */
#define CTL_MAX_FIELDS	      32	   /* members of a request object */
#define CTL_MAX_KEY	      64	   /* a field name: bytes */
#define CTL_MAX_STRING	      4096	   /* a string value: bytes after unescaping */
#define CTL_MAX_JSON_U64      (1ull << 53) /* a u64 field given as a JSON number */
#define CTL_STATUS_PAGES      256	   /* status: poisoned pages listed */
#define CTL_STATUS_HELD	      32	   /* status: held records listed */

/* Commands. */
#define CTL_CMD_INJECT	"inject"
#define CTL_CMD_STATUS	"status"
#define CTL_CMD_EVENTS	"events"
#define CTL_CMD_MIGRATE "migrate"
#define CTL_CMD_QUIT	"quit"

/* Fields of every request and response. */
#define CTL_F_CMD   "cmd"
#define CTL_F_ID    "id"
#define CTL_F_OK    "ok"
#define CTL_F_ERROR "error"

/* inject: exactly one of class, text or status. */
#define CTL_F_CLASS	 "class"
#define CTL_F_TEXT	 "text"
#define CTL_F_STATUS	 "status"
#define CTL_F_GPA	 "gpa"
#define CTL_F_CPU	 "cpu"
#define CTL_F_BROADCAST	 "broadcast"
#define CTL_F_LMCE	 "lmce"
#define CTL_F_ADDR	 "addr"
#define CTL_F_MISC	 "misc"
#define CTL_F_MCG_STATUS "mcg_status"
#define CTL_F_IN_HANDLER "in_handler"

/* events */
#define CTL_F_AFTER    "after"
#define CTL_F_MAX      "max"
#define CTL_F_FOLLOW   "follow"
#define CTL_F_EVENTS   "events"
#define CTL_F_LAST_SEQ "last_seq"
#define CTL_F_MORE     "more"

/* migrate */
#define CTL_F_TO	     "to"
#define CTL_F_ABORT_ON_ERROR "abort_on_error"

#endif
