// SPDX-License-Identifier: MIT
/*
 * The control-socket client shared by inject, status, events and quit.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "client.h"
#include "jsonutil.h"
#include "vmcectl.h"

const char *client_socket_path(const char *opt)
{
	const char *env = getenv("VMCE_SOCKET");

	if (opt && *opt)
		return opt;
	if (env && *env)
		return env;
	usage_error("no control socket: give --socket PATH or set VMCE_SOCKET");
	return NULL;
}

int client_connect(struct client *c, const char *path, int timeout_s)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};

	memset(c, 0, sizeof(*c));
	c->fd = -1;
	c->path = path;
	c->timeout_ms = timeout_s > 0 ? timeout_s * 1000 : -1;
	if (strlen(path) >= sizeof(sa.sun_path))
		return fail("socket path '%.64s...' is longer than %zu bytes", path,
			    sizeof(sa.sun_path) - 1);
	memcpy(sa.sun_path, path, strlen(path) + 1);
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		return fail("socket: %s", strerror(errno));
	if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa))) {
		int e = errno;

		close(c->fd);
		c->fd = -1;
		if (e == ENOENT || e == ECONNREFUSED)
			return fail("cannot connect to %s: %s (is 'vmce-vm --control %s' running?)",
				    path, strerror(e), path);
		return fail("cannot connect to %s: %s", path, strerror(e));
	}
	return 0;
}

void client_close(struct client *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	free(c->buf);
	c->buf = NULL;
	c->len = c->cap = c->consumed = 0;
}

int client_send(struct client *c, const char *line)
{
	size_t n = strlen(line), off = 0;
	char *msg;

	if (n + 1 > CTL_MAX_LINE)
		return fail("the request is %zu bytes; vmce-vm accepts at most %u per line", n + 1,
			    CTL_MAX_LINE);
	msg = malloc(n + 1);
	if (!msg)
		return fail("out of memory");
	memcpy(msg, line, n);
	msg[n++] = '\n';
	while (off < n) {
		ssize_t w = send(c->fd, msg + off, n - off, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			free(msg);
			return fail("cannot send to %s: %s", c->path, strerror(errno));
		}
		off += (size_t)w;
	}
	free(msg);
	return 0;
}

int client_recv(struct client *c, char **line, size_t *len)
{
	if (c->consumed) {
		memmove(c->buf, c->buf + c->consumed, c->len - c->consumed);
		c->len -= c->consumed;
		c->consumed = 0;
	}
	size_t scanned = 0; /* bytes known to hold no newline */

	for (;;) {
		char *nl =
			c->len > scanned ? memchr(c->buf + scanned, '\n', c->len - scanned) : NULL;
		struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
		ssize_t r;
		int pr;

		if (nl) {
			*nl = '\0';
			*line = c->buf;
			*len = (size_t)(nl - c->buf);
			if (*len && c->buf[*len - 1] == '\r')
				c->buf[--*len] = '\0';
			c->consumed = (size_t)(nl - c->buf) + 1;
			return 1;
		}
		scanned = c->len;
		if (c->len >= CLIENT_MAX_LINE) {
			fail("a line from %s is longer than %u bytes", c->path, CLIENT_MAX_LINE);
			return -1;
		}
		if (c->cap - c->len < 4096) {
			size_t ncap = c->cap ? c->cap * 2 : 65536;
			char *nb;

			if (ncap > CLIENT_MAX_LINE + 4096)
				ncap = CLIENT_MAX_LINE + 4096;
			nb = realloc(c->buf, ncap);
			if (!nb) {
				fail("out of memory");
				return -1;
			}
			c->buf = nb;
			c->cap = ncap;
		}
		pr = poll(&pfd, 1, c->timeout_ms);
		if (pr < 0 && errno == EINTR)
			continue;
		if (pr < 0) {
			fail("poll: %s", strerror(errno));
			return -1;
		}
		if (pr == 0) {
			fail("no response from %s within %d s", c->path, c->timeout_ms / 1000);
			return -1;
		}
		r = recv(c->fd, c->buf + c->len, c->cap - c->len - 1, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			fail("cannot read from %s: %s", c->path, strerror(errno));
			return -1;
		}
		if (r == 0) {
			if (c->len)
				fail("%s closed the connection in the middle of a line", c->path);
			return c->len ? -1 : 0;
		}
		c->len += (size_t)r;
	}
}

json_t *client_call(struct client *c, const char *request, const char **raw)
{
	json_t *resp;
	struct vmce_err err;
	char *line;
	size_t len;
	int r;

	if (client_send(c, request))
		return NULL;
	r = client_recv(c, &line, &len);
	if (r == 0)
		fail("%s closed the connection without a response", c->path);
	if (r <= 0)
		return NULL;
	resp = jparse(line, len, JSON_DECODE_ANY, &err);
	if (!resp) {
		fail("vmce-vm sent a response that is not valid JSON: %s", err.msg);
		return NULL;
	}
	if (!json_is_object(resp)) {
		json_decref(resp);
		fail("vmce-vm sent a response that is not a JSON object");
		return NULL;
	}
	if (raw)
		*raw = line;
	return resp;
}

int client_error(const json_t *resp)
{
	return fail("vmce-vm refused the request: %s",
		    jget_str(resp, CTL_F_ERROR, "(no error text)"));
}
