// SPDX-License-Identifier: MIT
/*
 * vmcectl's control-socket client against a scripted server: every misbehaviour of the other
 * end (no response, a broken or non-JSON line, an oversized line, a refused request, a closed
 * event stream, silence) ends in exit status 1 and a message naming it, never a crash or a
 * hang.  The server runs in a thread of this test; vmcectl runs as a child process.
 *
 *   test_vmcectl_client PATH/TO/vmcectl
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

static const char *vmcectl;
static char dir[40], sock_path[64];

/* What the server does with one connection: read one request line, then send `reply`
 * (byte for byte; NULL: nothing) and close (or wait `linger_ms` first). */
struct script {
	const char *reply;
	size_t reply_len; /* 0: strlen(reply) */
	int linger_ms;
	char request[8192]; /* the request line received */
};

struct server {
	int fd;
	struct script *s;
	pthread_t thread;
};

static void *serve(void *arg)
{
	struct server *sv = arg;
	int c = accept(sv->fd, NULL, NULL);
	size_t n = 0;

	if (c < 0)
		return NULL;
	while (n < sizeof(sv->s->request) - 1) {
		ssize_t r = read(c, sv->s->request + n, 1);

		if (r <= 0 || sv->s->request[n] == '\n')
			break;
		n++;
	}
	sv->s->request[n] = '\0';
	if (sv->s->reply) {
		size_t len = sv->s->reply_len ? sv->s->reply_len : strlen(sv->s->reply), off = 0;

		while (off < len) {
			ssize_t w = send(c, sv->s->reply + off, len - off, MSG_NOSIGNAL);

			if (w <= 0)
				break;
			off += (size_t)w;
		}
	}
	if (sv->s->linger_ms)
		usleep((useconds_t)sv->s->linger_ms * 1000);
	close(c);
	return NULL;
}

static void server_start(struct server *sv, struct script *s)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};

	sv->s = s;
	sv->fd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_true(sv->fd >= 0);
	unlink(sock_path);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock_path);
	assert_int_equal(bind(sv->fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(sv->fd, 4), 0);
	assert_int_equal(pthread_create(&sv->thread, NULL, serve, sv), 0);
}

static void server_stop(struct server *sv)
{
	pthread_join(sv->thread, NULL);
	close(sv->fd);
	unlink(sock_path);
}

/* Run `vmcectl ARGS --socket PATH`; returns its exit status, stdout and stderr. */
static int run(const char *args, char *out, size_t outlen, char *err, size_t errlen)
{
	char cmd[512], errfile[128];
	FILE *p, *e;
	size_t n;
	int st;

	snprintf(errfile, sizeof(errfile), "%s/stderr", dir);
	snprintf(cmd, sizeof(cmd), "'%s' %s --socket '%s' 2>'%s'", vmcectl, args, sock_path,
		 errfile);
	p = popen(cmd, "r");
	assert_non_null(p);
	n = fread(out, 1, outlen - 1, p);
	out[n] = '\0';
	st = pclose(p);
	e = fopen(errfile, "r");
	assert_non_null(e);
	n = fread(err, 1, errlen - 1, e);
	err[n] = '\0';
	fclose(e);
	unlink(errfile);
	assert_true(WIFEXITED(st));
	return WEXITSTATUS(st);
}

/* One exchange: the server follows `s`; vmcectl must exit `want` with `msg` on stderr. */
static void exchange(const char *args, struct script *s, int want, const char *msg,
		     const char *out_has)
{
	static char out[1 << 16], err[4096];
	struct server sv;
	int rc;

	server_start(&sv, s);
	rc = run(args, out, sizeof(out), err, sizeof(err));
	server_stop(&sv);
	if (rc != want || !strstr(err, msg) || (out_has && !strstr(out, out_has)))
		fail_msg("vmcectl %s: exit %d (want %d)\nstdout: %s\nstderr: %s\nwanted: %s", args,
			 rc, want, out, err, msg);
}

static void test_ok_requests(void **state)
{
	struct script s = {.reply = "{\"ok\":true,\"quit\":true}\n"};

	exchange("quit", &s, 0, "", "vmce-vm is stopping");
	assert_string_equal(s.request, "{\"cmd\":\"quit\"}");

	s = (struct script){.reply = "{\"ok\":true,\"results\":[{\"verdict\":\"forward\",\"class\":"
				     "\"srao\",\"gpa\":\"0x2000\",\"queued\":true,\"reason\":"
				     "\"r\\u00e9ason \\\"q\\\"\"}],\"last_seq\":7}\r\n"};
	exchange("inject --srao --gpa 8K --cpu 1 --no-broadcast --local", &s, 0, "",
		 "reason: r\xc3\xa9"
		 "ason \"q\"");
	assert_string_equal(s.request, "{\"cmd\":\"inject\",\"class\":\"srao\",\"gpa\":\"0x2000\","
				       "\"cpu\":1,\"broadcast\":false,\"lmce\":true}");

	s = (struct script){.reply = "{\"ok\":true,\"results\":[],\"last_seq\":1}\n"};
	exchange("inject --status 0xbd80000000000134 --misc 0x8c --mcg-status 7 --gpa 0x3000", &s,
		 0, "", "last event: 1");
	assert_string_equal(s.request,
			    "{\"cmd\":\"inject\",\"status\":\"0xbd80000000000134\","
			    "\"addr\":\"0x3000\",\"misc\":\"0x8c\",\"mcg_status\":\"0x7\"}");

	s = (struct script){.reply = "{\"ok\":true,\"events\":[{\"seq\":5,\"kind\":\"dropped\"},"
				     "{\"seq\":6,\"kind\":\"forwarded\"}],\"last_seq\":6,"
				     "\"more\":false}\n"};
	exchange("events --json --after 4 --max 2", &s, 0, "",
		 "{\"seq\":5,\"kind\":\"dropped\"}\n{\"seq\":6,\"kind\":\"forwarded\"}\n");
	assert_string_equal(s.request, "{\"cmd\":\"events\",\"after\":4,\"max\":2}");
}

static void test_refused(void **state)
{
	struct script s = {.reply = "{\"ok\":false,\"error\":\"field \\\"cpu\\\": vCPU 9 does not "
				    "exist (the VM has 2 vCPUs)\"}\n"};

	exchange("inject --srao --gpa 1 --cpu 9", &s, 1,
		 "vmcectl inject: vmce-vm refused the request: field \"cpu\": vCPU 9 does not "
		 "exist",
		 NULL);
	s = (struct script){.reply = "{\"ok\":false}\n"};
	exchange("status", &s, 1, "refused the request: (no error text)", NULL);
}

static void test_bad_responses(void **state)
{
	struct script s = {.reply = NULL};

	exchange("status", &s, 1, "closed the connection without a response", NULL);
	s = (struct script){.reply = "{\"ok\":tru"};
	exchange("status", &s, 1, "closed the connection in the middle of a line", NULL);
	s = (struct script){.reply = "{\"ok\":tru}\n"};
	exchange("status", &s, 1, "not valid JSON: invalid token near 'tru' at byte 6", NULL);
	s = (struct script){.reply = "[1,2]\n"};
	exchange("quit", &s, 1, "not a JSON object", NULL);
	s = (struct script){.reply = "{\"ok\":true}{}\n"};
	exchange("quit", &s, 1, "end of file expected near '{' at byte 11", NULL);
	s = (struct script){.reply = "{\"a\":\"\x01\"}\n"};
	exchange("quit", &s, 1, "control character 0x1", NULL);
	s = (struct script){.reply = "{\"a\":\"\\q\"}\n"};
	exchange("quit", &s, 1, "invalid escape", NULL);
	s = (struct script){.reply = "{\"a\":\"x\0y\"}\n", .reply_len = 12};
	exchange("quit", &s, 1, "NUL byte", NULL);
	s = (struct script){
		.reply = "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]"
			 "]]]]]]]]]]]]]]]]\n"};
	exchange("quit", &s, 1, "nested too deeply", NULL);
	/* An events response without its array. */
	s = (struct script){.reply = "{\"ok\":true,\"last_seq\":0}\n"};
	exchange("events", &s, 1, "has no \"events\" array", NULL);
}

static void test_oversized_line(void **state)
{
	size_t len = (16u << 20) + 100;
	char *big = malloc(len);
	struct script s;

	assert_non_null(big);
	memset(big, 'x', len);
	s = (struct script){.reply = big, .reply_len = len};
	exchange("status", &s, 1, "is longer than 16777216 bytes", NULL);
	free(big);
}

static void test_silence(void **state)
{
	struct script s = {.reply = NULL, .linger_ms = 2500};

	exchange("status --timeout 1", &s, 1, "no response from", NULL);
}

static void test_follow(void **state)
{
	struct script s = {
		.reply = "{\"ok\":true,\"follow\":true,\"last_seq\":0}\n"
			 "{\"seq\":1,\"time_ns\":0,\"kind\":\"forwarded\",\"class\":"
			 "\"srao\",\"vcpu\":0,\"gpa\":\"0x2000\",\"signal\":\"mc\","
			 "\"mcg_status\":\"0x5\",\"bank\":1,\"status\":\"0xbd\","
			 "\"addr\":\"0x2000\",\"misc\":\"0x8c\",\"reason\":\"why\"}\n"
			 "{\"kind\":\"lost\",\"after\":1,\"next\":5}\n"
			 "{\"kind\":\"vm-exit\",\"status\":4,\"reason\":\"shut down\"}\n"};

	exchange("events --follow", &s, 0, "", "-- the VM stopped: shut down (exit status 4) --");
	assert_string_equal(s.request, "{\"cmd\":\"events\",\"follow\":true,\"after\":0}");
	exchange("events --follow", &s, 0, "", "-- events 2 to 4 were lost");
	exchange("events --follow", &s, 0, "", "forwarded srao  0    0x2000");
	/* The stream ends without vm-exit: a failure. */
	s = (struct script){.reply = "{\"ok\":true,\"follow\":true,\"last_seq\":0}\n"
				     "{\"seq\":1,\"kind\":\"dropped\"}\n"};
	exchange("events --follow --json", &s, 1, "closed the event stream before the VM stopped",
		 "{\"seq\":1,\"kind\":\"dropped\"}\n");
	s = (struct script){.reply = "{\"ok\":true,\"follow\":true,\"last_seq\":0}\nnot json\n"};
	exchange("events --follow", &s, 1, "an event line that is not a JSON object", NULL);
	s = (struct script){.reply = "{\"ok\":false,\"error\":\"field \\\"after\\\": value out of "
				     "range\"}\n"};
	exchange("events --follow --after 5", &s, 1, "value out of range", NULL);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ok_requests),   cmocka_unit_test(test_refused),
		cmocka_unit_test(test_bad_responses), cmocka_unit_test(test_oversized_line),
		cmocka_unit_test(test_silence),	      cmocka_unit_test(test_follow),
	};
	int rc;

	if (argc != 2) {
		fprintf(stderr, "usage: %s PATH/TO/vmcectl\n", argv[0]);
		return 2;
	}
	vmcectl = argv[1];
	snprintf(dir, sizeof(dir), "/tmp/vmcectl-client.XXXXXX");
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(sock_path, sizeof(sock_path), "%s/ctl.sock", dir);
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	rmdir(dir);
	return rc;
}
