// SPDX-License-Identifier: MIT
/*
 * vmce-vm-send: a minimal client of the vmce-vm control socket for scripts and tests.
 *
 *   vmce-vm-send [--wait S] [--follow S] [--until TEXT] SOCKET [REQUEST...]
 *
 * Sends each REQUEST (a JSON line; without any, the lines of stdin) and prints each response
 * line.  --wait: retry connecting for up to S seconds.  --follow: afterwards keep printing what
 * arrives for up to S seconds (an "events" stream), or until a line containing TEXT (--until).
 * Exit status: 0, 1 connection or I/O error, 2 usage, 3 some response had "ok":false.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static char rbuf[1 << 21];
static size_t rlen;

/* Read one line (without '\n') into line; -1 on EOF/error, 0 on timeout, 1 when read. */
static int read_line(int fd, char **line, double deadline)
{
	for (;;) {
		char *nl = memchr(rbuf, '\n', rlen);
		struct pollfd p = {fd, POLLIN, 0};
		double left;
		ssize_t n;

		if (nl) {
			*nl = '\0';
			*line = strdup(rbuf);
			rlen -= (size_t)(nl + 1 - rbuf);
			memmove(rbuf, nl + 1, rlen);
			return *line ? 1 : -1;
		}
		if (rlen == sizeof(rbuf))
			return -1;
		left = deadline - now_s();
		if (left <= 0)
			return 0;
		if (poll(&p, 1, (int)(left * 1000) + 1) <= 0)
			continue;
		n = read(fd, rbuf + rlen, sizeof(rbuf) - rlen);
		if (n <= 0)
			return -1;
		rlen += (size_t)n;
	}
}

static int send_all(int fd, const char *s, size_t len)
{
	while (len) {
		ssize_t w = send(fd, s, len, MSG_NOSIGNAL);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		s += w;
		len -= (size_t)w;
	}
	return 0;
}

static int request(int fd, const char *req, int *bad)
{
	char *line;

	if (send_all(fd, req, strlen(req)) || send_all(fd, "\n", 1)) {
		perror("vmce-vm-send: send");
		return -1;
	}
	if (read_line(fd, &line, now_s() + 30) <= 0) {
		fprintf(stderr, "vmce-vm-send: no response to %s\n", req);
		return -1;
	}
	if (strstr(line, "\"ok\":false"))
		*bad = 1;
	printf("%s\n", line);
	fflush(stdout);
	free(line);
	return 0;
}

int main(int argc, char **argv)
{
	double wait = 0, follow = 0;
	const char *until = NULL;
	struct sockaddr_un addr;
	int fd = -1, i = 1, bad = 0;
	double deadline;

	for (; i < argc && !strncmp(argv[i], "--", 2); i += 2) {
		if (i + 1 >= argc)
			goto usage;
		if (!strcmp(argv[i], "--wait"))
			wait = atof(argv[i + 1]);
		else if (!strcmp(argv[i], "--follow"))
			follow = atof(argv[i + 1]);
		else if (!strcmp(argv[i], "--until"))
			until = argv[i + 1];
		else
			goto usage;
	}
	if (i >= argc || strlen(argv[i]) >= sizeof(addr.sun_path))
		goto usage;
	memset(&addr, 0, sizeof(addr));
	addr.sun_family = AF_UNIX;
	strcpy(addr.sun_path, argv[i++]);
	deadline = now_s() + wait;
	for (;;) {
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd >= 0 && connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0)
			break;
		if (fd >= 0)
			close(fd);
		if (now_s() >= deadline) {
			fprintf(stderr, "vmce-vm-send: %s: %s\n", addr.sun_path, strerror(errno));
			return 1;
		}
		usleep(50000);
	}
	if (i < argc) {
		for (; i < argc; i++)
			if (request(fd, argv[i], &bad))
				return 1;
	} else {
		char *line = NULL;
		size_t cap = 0;
		ssize_t n;

		while ((n = getline(&line, &cap, stdin)) > 0) {
			if (line[n - 1] == '\n')
				line[n - 1] = '\0';
			if (request(fd, line, &bad)) {
				free(line);
				return 1;
			}
		}
		free(line);
	}
	if (follow > 0) {
		double end = now_s() + follow;
		char *line;

		while (read_line(fd, &line, end) > 0) {
			printf("%s\n", line);
			fflush(stdout);
			if (until && strstr(line, until)) {
				free(line);
				break;
			}
			free(line);
		}
	}
	close(fd);
	return bad ? 3 : 0;
usage:
	fprintf(stderr, "usage: vmce-vm-send [--wait S] [--follow S] [--until TEXT] SOCKET "
			"[REQUEST...]\n");
	return 2;
}
