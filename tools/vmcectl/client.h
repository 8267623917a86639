/* SPDX-License-Identifier: MIT */
/*
 * client.h - a connection to vmce-vm's control socket (docs/control-protocol.md): one JSON
 * request per line, one response per line.
 */
#ifndef VMCECTL_CLIENT_H
#define VMCECTL_CLIENT_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "control_proto.h"

#define CLIENT_MAX_LINE	   (16u << 20) /* longest response line accepted */
#define CLIENT_DEF_TIMEOUT 10	       /* seconds to wait for a response */
/* A request line is at most CTL_MAX_LINE bytes, newline included (the server's limit). */

struct client {
	int fd;
	const char *path;
	int timeout_ms; /* -1: wait forever */
	char *buf;	/* received, not yet consumed */
	size_t len, cap;
	size_t consumed; /* bytes of the line last returned, dropped on the next call */
};

/* Connect to path.  Returns 0, or prints why on stderr and returns EXIT_FAIL. */
int client_connect(struct client *c, const char *path, int timeout_s);
void client_close(struct client *c);

/* Send one request line (a newline is added).  Returns 0, or prints why and returns
 * EXIT_FAIL. */
int client_send(struct client *c, const char *line);

/* Receive the next line (without the newline) into *line, valid until the next call.
 * Returns 1 for a line, 0 at end of stream, or prints why and returns -1. */
int client_recv(struct client *c, char **line, size_t *len);

/* Send a request and parse its response (a JSON object).  Returns the response (free it with
 * json_decref()), or NULL after printing why (a transport or syntax problem; an ok:false
 * response is returned like any other).  *raw gets the response text (valid until the next
 * call). */
json_t *client_call(struct client *c, const char *request, const char **raw);

/* Print vmce-vm's error of an ok:false response and return EXIT_FAIL. */
int client_error(const json_t *resp);

/* The socket path: the --socket option, else $VMCE_SOCKET, else NULL after a usage error. */
const char *client_socket_path(const char *opt);

#endif /* VMCECTL_CLIENT_H */
