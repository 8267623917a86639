// SPDX-License-Identifier: MIT
/*
 * End-to-end tests of vmce-vm: boot the built-in guest under KVM, inject machine checks through
 * the control socket, and assert on the guest's console lines, the responses and the event
 * log.
 *
 *   vmce-e2e VMCE_VM SCENARIO [SECONDS]
 *
 * Scenarios: srao, srao_hybrid, srar, ce, outside, fatal, fatal_log_only, nested, burst2,
 * burst4, burst4_hybrid, nobroadcast, nobroadcast_text, broadcast4, lmce, image, elf, console,
 * fuzz.
 * Exit 0 pass, 1 fail, 77 skip (no usable /dev/kvm).
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#define BOOT_TIMEOUT 60.0
#define STEP_TIMEOUT 30.0

static const char *vmm_path;
static char dir[256], sock_path[300], console_path[300], stderr_path[300], events_path[300];
static pid_t vm_pid = -1;
static int vm_status = -1;

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf;
	long n;

	if (!f)
		return strdup("");
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = calloc(1, (size_t)(n > 0 ? n : 0) + 1);
	if (buf && n > 0 && fread(buf, 1, (size_t)n, f) != (size_t)n)
		buf[0] = '\0';
	fclose(f);
	return buf;
}

static void cleanup(void)
{
	if (vm_pid > 0) {
		kill(vm_pid, SIGKILL);
		waitpid(vm_pid, NULL, 0);
		vm_pid = -1;
	}
	unlink(sock_path);
	unlink(console_path);
	unlink(stderr_path);
	unlink(events_path);
	rmdir(dir);
}

static void dump(void)
{
	char *c = slurp(console_path), *e = slurp(stderr_path), *ev = slurp(events_path);

	fprintf(stderr,
		"---- guest console ----\n%s---- vmce-vm stderr ----\n%s"
		"---- events log ----\n%s----\n",
		c, e, ev);
	free(c);
	free(e);
	free(ev);
}

static void __attribute__((noreturn, format(printf, 1, 2))) fail(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "FAIL: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	dump();
	cleanup();
	exit(1);
}

static void start_vm(const char *const *extra)
{
	const char *argv[32];
	int n = 0;

	argv[n++] = vmm_path;
	argv[n++] = "--control";
	argv[n++] = sock_path;
	argv[n++] = "--events-log";
	argv[n++] = events_path;
	argv[n++] = "--timeout";
	argv[n++] = "170";
	for (; extra && *extra && n < 30; extra++)
		argv[n++] = *extra;
	argv[n] = NULL;
	vm_pid = fork();
	if (vm_pid < 0)
		fail("fork: %s", strerror(errno));
	if (vm_pid == 0) {
		int out = open(console_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		int err = open(stderr_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

		if (out < 0 || err < 0)
			_exit(126);
		dup2(out, 1);
		dup2(err, 2);
		execv(vmm_path, (char *const *)argv);
		_exit(127);
	}
}

/* Has the VMM exited?  Records its status. */
static bool vm_exited(void)
{
	int st;

	if (vm_pid <= 0)
		return true;
	if (waitpid(vm_pid, &st, WNOHANG) == vm_pid) {
		vm_status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
		vm_pid = -1;
		return true;
	}
	return false;
}

static int wait_exit(double timeout)
{
	double end = now_s() + timeout;

	while (!vm_exited()) {
		if (now_s() > end)
			fail("vmce-vm did not exit within %.0f s", timeout);
		usleep(20000);
	}
	return vm_status;
}

/* Count console lines that contain every one of the (NULL-terminated) substrings. */
static int count_lines(const char *buf, const char *a, const char *b, char *first, size_t flen)
{
	int n = 0;

	for (const char *l = buf; *l;) {
		const char *nl = strchr(l, '\n');
		size_t len = nl ? (size_t)(nl - l) : strlen(l);
		char line[1024];

		if (len >= sizeof(line))
			len = sizeof(line) - 1;
		memcpy(line, l, len);
		line[len] = '\0';
		if (strstr(line, a) && (!b || strstr(line, b))) {
			if (n == 0 && first)
				snprintf(first, flen, "%s", line);
			n++;
		}
		l = nl ? nl + 1 : l + len;
	}
	return n;
}

/* Wait for the count-th console line containing a (and b). */
static void wait_console(const char *a, const char *b, int count, double timeout, char *line,
			 size_t len)
{
	double end = now_s() + timeout;

	for (;;) {
		char *c = slurp(console_path);
		int n = count_lines(c, a, b, line, len);

		free(c);
		if (n >= count)
			return;
		if (vm_exited())
			fail("vmce-vm exited (status %d) before the console showed \"%s%s%s\"",
			     vm_status, a, b ? "\" ... \"" : "", b ? b : "");
		if (now_s() > end)
			fail("no console line \"%s%s%s\" within %.0f s", a, b ? "\" ... \"" : "",
			     b ? b : "", timeout);
		usleep(50000);
	}
}

static int console_count(const char *a, const char *b)
{
	char *c = slurp(console_path);
	int n = count_lines(c, a, b, NULL, 0);

	free(c);
	return n;
}

/* ---- JSON: responses, event streams and the events log are parsed, fields compared ---- */

/* The value at path in v: object keys and array indexes separated by '.' ("results.0.verdict"). */
static json_t *json_at(json_t *v, const char *path)
{
	char buf[128], *save, *seg;

	snprintf(buf, sizeof(buf), "%s", path);
	for (seg = strtok_r(buf, ".", &save); v && seg; seg = strtok_r(NULL, ".", &save)) {
		char *end;
		unsigned long i = strtoul(seg, &end, 10);

		v = json_is_array(v) && !*end ? json_array_get(v, i) : json_object_get(v, seg);
	}
	return v;
}

/* Is the value at path in doc equal to want (JSON text, e.g. "true", "\"forward\"", "1")? */
static bool field_is(json_t *doc, const char *path, const char *want)
{
	json_t *w = json_loads(want, JSON_DECODE_ANY, NULL);
	bool eq;

	if (!w)
		fail("bad expected value %s", want);
	eq = json_equal(json_at(doc, path), w);
	json_decref(w);
	return eq;
}

/* A JSON line, parsed (NULL when it is not JSON). */
static json_t *parse_line(const char *line)
{
	return line ? json_loads(line, JSON_DECODE_ANY, NULL) : NULL;
}

/* Does the JSON line have the field at path equal to want? */
static bool line_has(const char *line, const char *path, const char *want)
{
	json_t *doc = parse_line(line);
	bool eq = doc && field_is(doc, path, want);

	json_decref(doc);
	return eq;
}

/* Count the events-log lines of this kind whose field at path is want (path NULL: any), or
 * whose string field at path contains want (substring true). */
static int events_match(const char *kind, const char *path, const char *want, bool substring)
{
	char *c = slurp(events_path);
	int n = 0;

	for (char *l = c, *nl; *l; l = nl ? nl + 1 : l + strlen(l)) {
		json_t *doc;
		const char *str, *k;

		nl = strchr(l, '\n');
		if (nl)
			*nl = '\0';
		doc = parse_line(l);
		if (!doc)
			fail("the events log has a line that is not JSON: %s", l);
		str = path ? json_string_value(json_at(doc, path)) : NULL;
		k = json_string_value(json_object_get(doc, "kind"));
		if (k && !strcmp(k, kind) &&
		    (!path || (substring ? str && strstr(str, want) : field_is(doc, path, want))))
			n++;
		json_decref(doc);
	}
	free(c);
	return n;
}

static int events_count(const char *kind, const char *path, const char *want)
{
	return events_match(kind, path, want, false);
}

/* ---- control socket ---- */

static int ctl_connect(void)
{
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	double end = now_s() + 10;
	int fd;

	if (strlen(sock_path) >= sizeof(addr.sun_path))
		fail("socket path %s is too long", sock_path);
	memcpy(addr.sun_path, sock_path, strlen(sock_path) + 1);
	for (;;) {
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd >= 0 && connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0)
			return fd;
		if (fd >= 0)
			close(fd);
		if (now_s() > end || vm_exited())
			fail("cannot connect to the control socket %s: %s", sock_path,
			     strerror(errno));
		usleep(20000);
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

/* Read one line; returns malloc'd line or NULL on timeout/EOF. */
static char *read_line(int fd, double timeout)
{
	size_t cap = 4096, len = 0;
	char *buf = malloc(cap);
	double end = now_s() + timeout;

	for (;;) {
		struct pollfd p = {fd, POLLIN, 0};
		char ch;
		ssize_t n;
		double left = end - now_s();

		if (left <= 0 || poll(&p, 1, (int)(left * 1000) + 1) <= 0) {
			if (now_s() >= end) {
				free(buf);
				return NULL;
			}
			continue;
		}
		n = read(fd, &ch, 1);
		if (n <= 0) {
			free(buf);
			return NULL;
		}
		if (ch == '\n') {
			buf[len] = '\0';
			return buf;
		}
		if (len + 2 >= cap) {
			cap *= 2;
			buf = realloc(buf, cap);
		}
		buf[len++] = ch;
	}
}

static char *ctl(int fd, const char *req)
{
	char *resp;

	if (send_all(fd, req, strlen(req)) || send_all(fd, "\n", 1))
		fail("send of %s: %s", req, strerror(errno));
	resp = read_line(fd, 10);
	if (!resp)
		fail("no response to %s", req);
	return resp;
}

/* The response's field at path is want (JSON text). */
static void expect(const char *resp, const char *path, const char *want, const char *req)
{
	json_t *doc = parse_line(resp);

	if (!doc)
		fail("request %s: the response is not JSON: %s", req, resp);
	if (!field_is(doc, path, want))
		fail("request %s: expected %s = %s in response %s", req, path, want, resp);
	json_decref(doc);
}

static void boot(const char *const *extra, unsigned cpus)
{
	char want[64];

	start_vm(extra);
	for (unsigned i = 0; i < cpus; i++) {
		snprintf(want, sizeof(want), "mce: init cpu=%u ", i);
		wait_console(want, NULL, 1, BOOT_TIMEOUT, NULL, 0);
	}
}

static void quit_vm(int fd)
{
	char *r = ctl(fd, "{\"cmd\":\"quit\"}");

	expect(r, "ok", "true", "quit");
	free(r);
	if (wait_exit(20) != 0)
		fail("vmce-vm exited with %d after quit, expected 0", vm_status);
}

/* ---- scenarios ---- */

static void assert_alive_after(void)
{
	int ticks = console_count("guest: alive tick=", NULL);

	wait_console("guest: alive tick=", NULL, ticks + 1, STEP_TIMEOUT, NULL, 0);
}

/* hybrid: the same with KVM's in-kernel MCA serving the hot path (--hybrid). */
static int scenario_srao(bool hybrid)
{
	static const char *const plain[] = {"--cpus", "2", NULL};
	static const char *const hyb[] = {"--cpus", "2", "--hybrid", NULL};
	const char *const *args = hybrid ? hyb : plain;
	char line[1024];
	char *r;
	int fd;

	int follow, delivered = 0;

	boot(args, 2);
	fd = ctl_connect();
	follow = ctl_connect();
	r = ctl(follow, "{\"cmd\":\"events\",\"follow\":true}");
	expect(r, "follow", "true", "events follow");
	free(r);
	r = ctl(fd, "{\"cmd\":\"inject\",\"class\":\"srao\",\"gpa\":\"0x2000000\",\"id\":7}");
	expect(r, "ok", "true", "srao");
	expect(r, "id", "7", "srao");
	expect(r, "results.0.verdict", "\"forward\"", "srao");
	expect(r, "results.0.queued", "true", "srao");
	free(r);
	wait_console("mce: cpu=0 bank=1 ", "action=offline-page result=recovered", 1, STEP_TIMEOUT,
		     line, sizeof(line));
	if (!strstr(line, "addr=0x2000000 "))
		fail("SRAO handled with the wrong address: %s", line);
	if (!strstr(line, "status=0xbd") || !strstr(line, "mcgstatus=0x5"))
		fail("SRAO record is not VAL|UC|EN|MISCV|ADDRV|S with MCIP|RIPV: %s", line);
	wait_console("mce: bystander cpu=1", NULL, 1, STEP_TIMEOUT, NULL, 0);
	assert_alive_after();
	/* The event stream shows the forward and both deliveries as they happened. */
	r = read_line(follow, STEP_TIMEOUT);
	if (!line_has(r, "seq", "1") || !line_has(r, "kind", "\"forwarded\""))
		fail("event stream: expected the forwarded event first, got %s", r ? r : "nothing");
	free(r);
	while (delivered < 2 && (r = read_line(follow, STEP_TIMEOUT))) {
		delivered += line_has(r, "kind", "\"delivered\"");
		free(r);
	}
	if (delivered != 2)
		fail("event stream: %d delivered events, expected 2", delivered);
	if (events_count("forwarded", "gpa", "\"0x2000000\"") != 1)
		fail("the event log has no forwarded SRAO event for 0x2000000");
	if (events_count("delivered", "signal", "\"mc\"") < 2)
		fail("the event log does not show #MC delivered to both vCPUs");
	r = ctl(fd, "{\"cmd\":\"status\"}");
	expect(r, "poisoned.pages", "[\"0x2000000\"]", "status");
	expect(r, "state", "\"running\"", "status");
	expect(r, "counters.by_class.srao", "1", "status");
	free(r);
	r = ctl(fd, "{\"cmd\":\"events\",\"after\":0,\"max\":1}");
	expect(r, "events.0.seq", "1", "events");
	expect(r, "more", "true", "events");
	free(r);
	quit_vm(fd);
	r = read_line(follow, STEP_TIMEOUT);
	if (!line_has(r, "kind", "\"vm-exit\"") ||
	    !line_has(r, "reason", "\"quit requested on the control socket\""))
		fail("event stream: expected the vm-exit line, got %s", r ? r : "nothing");
	free(r);
	close(follow);
	close(fd);
	return 0;
}

/* SMP broadcast: with 4 vCPUs every other vCPU enters the rendezvous and the guest recovers. */
static int scenario_broadcast4(void)
{
	static const char *const args[] = {"--cpus", "4", "--no-workload", NULL};
	char want[64];
	char *r;
	int fd;

	boot(args, 4);
	fd = ctl_connect();
	r = ctl(fd, "{\"cmd\":\"inject\",\"class\":\"srao\",\"gpa\":\"0x3000000\",\"cpu\":2}");
	expect(r, "results.0.verdict", "\"forward\"", "srao on 4 vCPUs");
	free(r);
	wait_console("addr=0x3000000 ", "action=offline-page result=recovered", 1, STEP_TIMEOUT,
		     NULL, 0);
	for (unsigned i = 0; i < 4; i++) {
		snprintf(want, sizeof(want), "mce: bystander cpu=%u", i);
		if (i != 0)
			wait_console(want, NULL, 1, STEP_TIMEOUT, NULL, 0);
	}
	if (console_count("mce: bystander", NULL) != 3)
		fail("expected exactly 3 bystanders");
	assert_alive_after();
	if (events_count("delivered", "signal", "\"mc\"") != 4)
		fail("expected #MC delivered to all 4 vCPUs");
	quit_vm(fd);
	close(fd);
	return 0;
}

/* LMCE: the guest enables MCG_EXT_CTL.LMCE_EN; a local error goes to one vCPU only (LMCES),
 * without a rendezvous, and the guest recovers. */
static int scenario_lmce(void)
{
	static const char *const args[] = {
		"--cpus", "2", "--no-workload", "--profile", "intel,banks=2,ser,tes,cmci,lmce",
		NULL};
	char line[1024];
	char *r;
	int fd;

	boot(args, 2);
	if (console_count("mce: init cpu=1 ", "lmce=1") != 1)
		fail("the guest did not enable LMCE");
	fd = ctl_connect();
	r = ctl(fd, "{\"cmd\":\"inject\",\"class\":\"srao\",\"gpa\":\"0x2000000\",\"cpu\":1,"
		    "\"lmce\":true}");
	expect(r, "results.0.verdict", "\"forward\"", "local srao");
	expect(r, "results.0.plan.lmce", "true", "local srao");
	free(r);
	wait_console("mce: cpu=1 bank=1 ", "result=recovered", 1, STEP_TIMEOUT, line, sizeof(line));
	if (!strstr(line, "mcgstatus=0xd"))
		fail("local machine check without MCG_STATUS.LMCES: %s", line);
	assert_alive_after();
	if (console_count("mce: bystander", NULL) != 0)
		fail("a local machine check was broadcast");
	quit_vm(fd);
	close(fd);
	return 0;
}

static int scenario_srar(void)
{
	static const char *const args[] = {"--cpus", "2", NULL};
	char line[1024], req[256];
	unsigned cpu;
	uint64_t page;
	char *r, *p;
	int fd;

	boot(args, 2);
	wait_console("workload: start cpu=", " page=0x", 1, BOOT_TIMEOUT, line, sizeof(line));
	p = strstr(line, "cpu=");
	cpu = (unsigned)strtoul(p + 4, NULL, 10);
	p = strstr(line, "page=");
	page = strtoull(p + 5, NULL, 16);
	fd = ctl_connect();
	snprintf(req, sizeof(req),
		 "{\"cmd\":\"inject\",\"class\":\"srar\",\"gpa\":\"0x%" PRIx64 "\",\"cpu\":%u}",
		 page, cpu);
	r = ctl(fd, req);
	expect(r, "results.0.verdict", "\"forward\"", req);
	free(r);
	wait_console("action=kill-workload result=restarted", NULL, 1, STEP_TIMEOUT, line,
		     sizeof(line));
	snprintf(req, sizeof(req), "mce: cpu=%u bank=1 ", cpu);
	if (!strstr(line, req))
		fail("SRAR handled on the wrong vCPU (expected %u): %s", cpu, line);
	if (!strstr(line, "mcgstatus=0x7"))
		fail("SRAR without MCIP|EIPV|RIPV: %s", line);
	wait_console("workload: restarted cpu=", NULL, 1, STEP_TIMEOUT, NULL, 0);
	assert_alive_after();
	if (events_count("forwarded", "class", "\"srar\"") != 1)
		fail("the event log has no forwarded SRAR event");
	quit_vm(fd);
	close(fd);
	return 0;
}

static int scenario_ce(void)
{
	static const char *const args[] = {"--cpus", "2", NULL};
	char *r;
	int fd;

	boot(args, 2);
	fd = ctl_connect();
	r = ctl(fd, "{\"cmd\":\"inject\",\"class\":\"ce\",\"gpa\":\"0x2000000\"}");
	expect(r, "results.0.verdict", "\"drop\"", "ce");
	expect(r, "results.0.queued", "false", "ce");
	free(r);
	assert_alive_after();
	assert_alive_after();
	if (console_count("mce: cpu=", NULL) != 0)
		fail("a corrected error reached the guest");
	if (events_count("dropped", "class", "\"ce\"") != 1)
		fail("the event log has no dropped CE event");
	if (events_count("delivered", NULL, NULL) != 0)
		fail("something was delivered for a CE");
	r = ctl(fd, "{\"cmd\":\"status\"}");
	expect(r, "poisoned.count", "0", "status");
	free(r);
	quit_vm(fd);
	close(fd);
	return 0;
}

static int scenario_outside(void)
{
	static const char *const args[] = {"--cpus", "2", NULL};
	char *r;
	int fd;

	boot(args, 2);
	fd = ctl_connect();
	/* 4 GiB: far outside the 64 MiB of guest memory. */
	r = ctl(fd, "{\"cmd\":\"inject\",\"class\":\"srao\",\"gpa\":\"0x100000000\"}");
	expect(r, "ok", "true", "outside");
	if (line_has(r, "results.0.verdict", "\"forward\"") ||
	    line_has(r, "results.0.queued", "true"))
		fail("an error outside guest memory was forwarded: %s", r);
	free(r);
	assert_alive_after();
	if (console_count("mce: cpu=", NULL) != 0)
		fail("an error outside guest memory reached the guest");
	if (events_count("forwarded", NULL, NULL) != 0 ||
	    events_count("delivered", NULL, NULL) != 0)
		fail("the event log shows a forwarded error outside guest memory");
	quit_vm(fd);
	close(fd);
	return 0;
}

/* An error fatal to the guest: shut down (exit 4, reason logged), or with --fatal log-only
 * logged while the guest keeps running. */
static int scenario_fatal(bool log_only)
{
	static const char *const plain[] = {"--cpus", "2", NULL};
	static const char *const logonly[] = {"--cpus", "2", "--fatal", "log-only", NULL};
	char *r, *e;
	int fd;

	boot(log_only ? logonly : plain, 2);
	fd = ctl_connect();
	r = ctl(fd, "{\"cmd\":\"inject\",\"class\":\"fatal\",\"cpu\":1}");
	expect(r, "results.0.verdict", "\"fatal\"", "fatal");
	free(r);
	if (events_count("fatal", NULL, NULL) < 1)
		fail("the event log has no fatal event");
	if (log_only) {
		assert_alive_after();
		quit_vm(fd);
	} else {
		if (wait_exit(STEP_TIMEOUT) != 4)
			fail("vmce-vm exited with %d, expected 4 (shut down by vmce)", vm_status);
		e = slurp(stderr_path);
		if (!strstr(e, "vmce-vm: guest stopped: vmce shut the guest down on vCPU 1: "))
			fail("stderr does not log the shutdown with its reason");
		free(e);
		if (events_count("vm-exit", "status", "4") != 1)
			fail("the event log has no vm-exit line with status 4");
	}
	close(fd);
	return 0;
}

/*
 * nested: two SRAOs queued at once on vCPU 0 -- the second would find MCIP set -- are both
 * handled (the second is held until the guest's handler clears MCIP); then an SRAR that vCPU 0
 * raises while its handler runs (it consumed poison inside its #MC handler: control
 * "in_handler") shuts the guest down, with the reason logged.
 */
static int scenario_nested(void)
{
	static const char *const args[] = {"--cpus", "2", NULL};
	char *r, *e;
	int fd;

	boot(args, 2);
	fd = ctl_connect();
	r = ctl(fd, "{\"cmd\":\"inject\",\"text\":\""
		    "CPU 0 BANK 1\\nSTATUS UNCORRECTED SRAO 0x17a\\nMCGSTATUS RIPV MCIP\\n"
		    "ADDR 0x2800000\\nMISC 0x8c\\n"
		    "CPU 0 BANK 1\\nSTATUS UNCORRECTED SRAO 0x17a\\nMCGSTATUS RIPV MCIP\\n"
		    "ADDR 0x2801000\\nMISC 0x8c\\n\"}");
	expect(r, "ok", "true", "nested srao");
	free(r);
	wait_console("addr=0x2800000", "action=offline-page result=recovered", 1, STEP_TIMEOUT,
		     NULL, 0);
	wait_console("addr=0x2801000", "action=offline-page result=recovered", 1, STEP_TIMEOUT,
		     NULL, 0);
	if (events_count("held", "gpa", "\"0x2801000\"") != 1)
		fail("the second SRAO was not logged as held once");
	assert_alive_after();

	r = ctl(fd, "{\"cmd\":\"inject\",\"in_handler\":true,\"text\":\""
		    "CPU 0 BANK 1\\nSTATUS UNCORRECTED SRAO 0x17a\\nMCGSTATUS RIPV MCIP\\n"
		    "ADDR 0x2802000\\nMISC 0x8c\\n"
		    "CPU 0 BANK 1\\nSTATUS UNCORRECTED SRAR 0x134\\nMCGSTATUS RIPV EIPV MCIP\\n"
		    "ADDR 0x2803000\\nMISC 0x8c\\n\"}");
	expect(r, "results.1.verdict", "\"armed\"", "nested srar");
	free(r);
	if (wait_exit(STEP_TIMEOUT) != 4)
		fail("vmce-vm exited with %d, expected 4 (shut down by vmce)", vm_status);
	e = slurp(stderr_path);
	if (!strstr(e, "vmce-vm: guest stopped: vmce shut the guest down") ||
	    !strstr(e, "SRAR while MCG_STATUS.MCIP is set: the guest consumed poisoned memory "
		       "inside its machine-check handler"))
		fail("stderr does not log the shutdown with its reason");
	free(e);
	if (events_match("fatal", "reason",
			 "consumed poisoned memory inside its machine-check handler", true) != 1)
		fail("the events log has no fatal event saying why");
	if (events_count("vm-exit", "status", "4") != 1)
		fail("the event log has no vm-exit line with status 4");
	close(fd);
	return 0;
}

/*
 * burst: 100 SRAOs on distinct pages, 1 ms apart, into a guest with `cpus` vCPUs: the guest
 * stays alive, every page is offlined exactly once, and the console agrees with the events
 * log (one "forwarded" per page, one "delivered" per page and vCPU, "held" only before its
 * "forwarded"), nothing refused, dropped or fatal.
 */
#define BURST 100

static int scenario_burst(unsigned cpus, bool hybrid)
{
	char ncpu[8], req[160], what[64], *ev;
	const char *args[6] = {"--cpus", ncpu, NULL, NULL, NULL, NULL};
	struct vmce_counts {
		int fwd, dlv, held;
	} n;
	double t0, t1, t2;
	int fd, held_total = 0;

	snprintf(ncpu, sizeof(ncpu), "%u", cpus);
	if (hybrid)
		args[2] = "--hybrid";
	boot(args, cpus);
	fd = ctl_connect();
	t0 = now_s();
	for (unsigned i = 0; i < BURST; i++) {
		char *r;

		snprintf(req, sizeof(req),
			 "{\"cmd\":\"inject\",\"class\":\"srao\",\"gpa\":\"0x%x\"}",
			 0x2000000u + i * 0x1000u);
		r = ctl(fd, req);
		expect(r, "ok", "true", req);
		expect(r, "results.0.queued", "true", req);
		free(r);
		usleep(1000);
	}
	t1 = now_s();
	for (unsigned i = 0; i < BURST; i++) {
		snprintf(what, sizeof(what), "addr=0x%x ", 0x2000000u + i * 0x1000u);
		wait_console(what, "action=offline-page result=recovered", 1, STEP_TIMEOUT, NULL,
			     0);
	}
	t2 = now_s();
	assert_alive_after();
	for (unsigned i = 0; i < BURST; i++) {
		snprintf(what, sizeof(what), "addr=0x%x ", 0x2000000u + i * 0x1000u);
		if (console_count(what, "action=") != 1)
			fail("page 0x%x: %d console lines, want exactly one",
			     0x2000000u + i * 0x1000u, console_count(what, "action="));
		snprintf(what, sizeof(what), "\"0x%x\"", 0x2000000u + i * 0x1000u);
		n.fwd = events_count("forwarded", "gpa", what);
		n.dlv = events_count("delivered", "gpa", what);
		n.held = events_count("held", "gpa", what);
		if (n.fwd != 1 || n.dlv != (int)cpus || n.held > 1)
			fail("page 0x%x: %d forwarded, %d delivered, %d held events (want 1, %u, "
			     "at most 1)",
			     0x2000000u + i * 0x1000u, n.fwd, n.dlv, n.held, cpus);
		held_total += n.held;
	}
	if (console_count("action=offline-page result=recovered", NULL) != BURST)
		fail("%d pages recovered, want %d",
		     console_count("action=offline-page result=recovered", NULL), BURST);
	ev = slurp(events_path);
	if (strstr(ev, "\"kind\":\"refused\"") || strstr(ev, "\"kind\":\"dropped\"") ||
	    strstr(ev, "\"kind\":\"fatal\""))
		fail("an error was refused, dropped or fatal");
	free(ev);
	printf("burst: %d SRAOs in %.3f s (%.0f/s) into %u vCPUs%s: all recovered after %.3f s "
	       "(%.0f/s; console polled every 50 ms), %d held first\n",
	       BURST, t1 - t0, BURST / (t1 - t0), cpus, hybrid ? " (hybrid)" : "", t2 - t0,
	       BURST / (t2 - t0), held_total);
	quit_vm(fd);
	close(fd);
	return 0;
}

/* An SRAO to vCPU 0 only (no broadcast): the other vCPU never enters the rendezvous and the
 * guest panics with Linux's timeout message.  text: the mce-inject NOBROADCAST form. */
static int scenario_nobroadcast(bool text)
{
	static const char *const args[] = {"--cpus", "2", NULL};
	char *r;
	int fd;

	boot(args, 2);
	fd = ctl_connect();
	if (text)
		r = ctl(fd, "{\"cmd\":\"inject\",\"text\":\"CPU 0 BANK 1\\nSTATUS UNCORRECTED SRAO "
			    "0x17a\\nMCGSTATUS RIPV MCIP\\nADDR 0x2000000\\nMISC 0x8c\\n"
			    "NOBROADCAST\\n\"}");
	else
		r = ctl(fd, "{\"cmd\":\"inject\",\"class\":\"srao\",\"gpa\":\"0x2000000\","
			    "\"broadcast\":false}");
	expect(r, "results.0.verdict", "\"forward\"", "srao without broadcast");
	free(r);
	wait_console("mce: panic: Timeout: Not all CPUs entered broadcast exception handler", NULL,
		     1, STEP_TIMEOUT, NULL, 0);
	if (wait_exit(STEP_TIMEOUT) != 3)
		fail("vmce-vm exited with %d, expected 3 (guest panic)", vm_status);
	if (console_count("mce: bystander", NULL) != 0)
		fail("a bystander entered the rendezvous without a broadcast");
	close(fd);
	return 0;
}

/*
 * A hand-written flat image: prints msg, then either exits with status 0 through port 0x501
 * or halts forever (with interrupts off: only the VMM can end it).
 */
static void write_image(const char *path, const char *msg, bool halt)
{
	unsigned char img[256];
	size_t n = 0;
	int fd;

	/* mov dx, 0x3f8 */
	img[n++] = 0x66, img[n++] = 0xba, img[n++] = 0xf8, img[n++] = 0x03;
	for (const char *c = msg; *c && n < 200; c++)
		img[n++] = 0xb0, img[n++] = (unsigned char)*c, img[n++] = 0xee; /* mov al; out */
	if (halt) {
		img[n++] = 0xfa, img[n++] = 0xf4, img[n++] = 0xeb,
		img[n++] = 0xfd; /* cli; hlt; jmp */
	} else {
		/* mov dx, 0x501; mov al, 0; out dx, al; hlt */
		img[n++] = 0x66, img[n++] = 0xba, img[n++] = 0x01, img[n++] = 0x05;
		img[n++] = 0xb0, img[n++] = 0x00, img[n++] = 0xee, img[n++] = 0xf4;
	}
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || write(fd, img, n) != (ssize_t)n)
		fail("cannot write %s", path);
	close(fd);
}

static int scenario_image(void)
{
	char path[320];
	const char *args[] = {"--cpus", "1", "--image", path, NULL};

	snprintf(path, sizeof(path), "%s/flat.bin", dir);
	write_image(path, "flat: hello\n", false);
	start_vm(args);
	if (wait_exit(STEP_TIMEOUT) != 0)
		fail("vmce-vm exited with %d, expected 0", vm_status);
	unlink(path);
	if (console_count("flat: hello", NULL) != 1)
		fail("the flat image's console line is missing");
	return 0;
}

/* Console robustness: 3000 bytes of every value (binary, control characters, long lines). */
static int scenario_console(void)
{
	static const unsigned char code[] = {
		0x66, 0xba, 0xf8, 0x03,	      /* mov dx, 0x3f8 */
		0xb9, 0xb8, 0x0b, 0x00, 0x00, /* mov ecx, 3000 */
		0x88, 0xc8,		      /* 1: mov al, cl */
		0xee,			      /* out dx, al */
		0xe2, 0xfb,		      /* loop 1b */
		0xb0, 0x0a, 0xee,	      /* mov al, 10; out dx, al */
		0x66, 0xba, 0x01, 0x05,	      /* mov dx, 0x501 */
		0xb0, 0x00, 0xee, 0xf4,	      /* mov al, 0; out dx, al; hlt */
	};
	char path[320], *c;
	const char *args[] = {"--cpus", "1", "--image", path, NULL};
	size_t longest = 0;
	int fd;

	snprintf(path, sizeof(path), "%s/console.bin", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || write(fd, code, sizeof(code)) != (ssize_t)sizeof(code))
		fail("cannot write %s", path);
	close(fd);
	start_vm(args);
	if (wait_exit(STEP_TIMEOUT) != 0)
		fail("vmce-vm exited with %d, expected 0", vm_status);
	unlink(path);
	c = slurp(console_path);
	for (char *l = c; *l;) {
		char *nl = strchr(l, '\n');
		size_t len = nl ? (size_t)(nl - l) : strlen(l);

		if (len > longest)
			longest = len;
		for (size_t i = 0; i < len; i++)
			if ((unsigned char)l[i] < 0x20 || (unsigned char)l[i] >= 0x7f)
				fail("raw byte 0x%02x on the console", (unsigned char)l[i]);
		l = nl ? nl + 1 : l + len;
	}
	if (!strstr(c, "\\x01\\x00") || longest > 511 || longest < 400)
		fail("console lines not escaped or split as documented (longest %zu)", longest);
	free(c);
	return 0;
}

/* The same program as an ELF64 file loaded at 2 MiB (entry at e_entry, not the first byte). */
static int scenario_elf(void)
{
	char flat[320], path[320];
	const char *args[] = {"--cpus", "1", "--image", path, NULL};
	unsigned char code[256], file[1024];
	Elf64_Ehdr eh = {0};
	Elf64_Phdr ph = {0};
	ssize_t n;
	int fd;

	snprintf(flat, sizeof(flat), "%s/flat.bin", dir);
	write_image(flat, "elf: hello\n", false);
	fd = open(flat, O_RDONLY);
	n = fd >= 0 ? read(fd, code + 1, sizeof(code) - 1) : -1;
	if (fd >= 0)
		close(fd);
	unlink(flat);
	if (n <= 0)
		fail("cannot read back %s", flat);
	code[0] = 0xf4; /* a hlt before the entry point: entering at the first byte would hang */
	memcpy(eh.e_ident, ELFMAG, SELFMAG);
	eh.e_ident[EI_CLASS] = ELFCLASS64;
	eh.e_ident[EI_DATA] = ELFDATA2LSB;
	eh.e_ident[EI_VERSION] = EV_CURRENT;
	eh.e_type = ET_EXEC;
	eh.e_machine = EM_X86_64;
	eh.e_version = EV_CURRENT;
	eh.e_entry = 0x200001;
	eh.e_phoff = sizeof(eh);
	eh.e_ehsize = sizeof(eh);
	eh.e_phentsize = sizeof(ph);
	eh.e_phnum = 1;
	ph.p_type = PT_LOAD;
	ph.p_offset = 256;
	ph.p_vaddr = ph.p_paddr = 0x200000;
	ph.p_filesz = (uint64_t)n + 1;
	ph.p_memsz = 0x1000;
	memset(file, 0, sizeof(file));
	memcpy(file, &eh, sizeof(eh));
	memcpy(file + sizeof(eh), &ph, sizeof(ph));
	memcpy(file + 256, code, (size_t)n + 1);
	snprintf(path, sizeof(path), "%s/image.elf", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || write(fd, file, 256 + (size_t)n + 1) != 256 + n + 1)
		fail("cannot write %s", path);
	close(fd);
	start_vm(args);
	if (wait_exit(STEP_TIMEOUT) != 0)
		fail("vmce-vm exited with %d, expected 0", vm_status);
	unlink(path);
	if (console_count("elf: hello", NULL) != 1)
		fail("the ELF image's console line is missing");
	return 0;
}

/* ---- fuzzing ---- */

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static const char *const templates[] = {
	"{\"cmd\":\"status\"}",
	"{\"cmd\":\"events\",\"after\":0,\"max\":4}",
	"{\"cmd\":\"events\",\"after\":\"0x10\"}",
	"{\"cmd\":\"inject\",\"class\":\"ce\",\"gpa\":\"0x1000\"}",
	"{\"cmd\":\"inject\",\"class\":\"ce\",\"gpa\":4096,\"cpu\":0,\"broadcast\":true}",
	"{\"cmd\":\"inject\",\"class\":\"ucna\",\"gpa\":\"0x100000000\"}",
	"{\"cmd\":\"inject\",\"text\":\"CPU 0 BANK 1\\nSTATUS CORRECTED\\nADDR 0x1000\\n\"}",
	"{\"cmd\":\"inject\",\"status\":\"0x9000000000000000\",\"addr\":\"0x1000\"}",
	"{\"cmd\":\"inject\",\"class\":\"ce\",\"gpa\":\"0x1000\",\"id\":\"abc\"}",
	"{\"cmd\":\"status\",\"id\":12345678901234567890123}",
	"[1,2,3]",
	"{\"a\":{\"b\":[]}}",
	"\"\\ud800\"",
	"{\"cmd\":\"inject\",\"class\":\"ce\",\"gpa\":1e400}",
};

static size_t mutate(char *out, size_t cap)
{
	const char *t = templates[rnd() % (sizeof(templates) / sizeof(templates[0]))];
	size_t n = strlen(t), k;

	memcpy(out, t, n);
	switch (rnd() % 8) {
	case 0: /* flip bytes */
		for (k = rnd() % 4 + 1; k; k--)
			out[rnd() % n] ^= (char)(1u << (rnd() % 8));
		break;
	case 1: /* truncate */
		n = rnd() % n;
		break;
	case 2: /* random bytes (no newline) */
		n = rnd() % 200;
		for (size_t i = 0; i < n; i++) {
			out[i] = (char)(rnd() & 0xff);
			if (out[i] == '\n')
				out[i] = '{';
		}
		break;
	case 3: /* an over-long line */
		n = 8192 + rnd() % 9000;
		if (n > cap)
			n = cap;
		memset(out, (rnd() & 1) ? '{' : 'a', n);
		break;
	case 4: /* deep nesting */
		n = rnd() % 3000 + 1;
		memset(out, '[', n);
		break;
	case 5: /* insert a NUL or control byte */
		out[rnd() % n] = (char)(rnd() % 32 == 10 ? 0 : rnd() % 32);
		if (memchr(out, '\n', n))
			*(char *)memchr(out, '\n', n) = ' ';
		break;
	case 6: /* splice two templates */
		k = strlen(templates[0]);
		memcpy(out + n / 2, templates[0], k);
		n = n / 2 + k;
		break;
	default: /* huge number strings */
		n = (size_t)snprintf(out, cap,
				     "{\"cmd\":\"events\",\"after\":\"%0*d\",\"max\":%" PRIu64 "}",
				     (int)(rnd() % 5000), 7, rnd());
		break;
	}
	return n;
}

static int scenario_fuzz(double seconds)
{
	char path[320];
	/* log-only: a mutation that happens to describe a fatal error must not end the run. */
	const char *args[] = {"--cpus", "2", "--image", path, "--fatal", "log-only", NULL};
	enum { NCONN = 4 };
	static char buf[20000];
	int fds[NCONN], check, lazy;
	uint64_t sent = 0, lines = 0, partial = 0;
	double end, next_check;
	char *r;

	/* A guest that only halts: the fuzzing load is the VMM's, not the guest's. */
	snprintf(path, sizeof(path), "%s/halt.bin", dir);
	write_image(path, "flat: ready\n", true);
	start_vm(args);
	wait_console("flat: ready", NULL, 1, BOOT_TIMEOUT, NULL, 0);
	unlink(path);
	/* Connection flood: at most 8 at once, the others are told so and closed. */
	{
		int flood[10], refused = 0;

		for (int i = 0; i < 10; i++)
			flood[i] = ctl_connect();
		for (int i = 0; i < 10; i++) {
			struct pollfd p = {flood[i], POLLIN, 0};

			if (poll(&p, 1, 200) == 1) {
				char *l = read_line(flood[i], 1);

				refused += line_has(l, "error",
						    "\"too many control connections (limit 8)\"");
				free(l);
			}
		}
		for (int i = 0; i < 10; i++)
			close(flood[i]);
		if (refused != 2)
			fail("%d of 10 connections were refused, expected 2", refused);
		usleep(100000); /* let the VMM see the closes */
	}
	for (int i = 0; i < NCONN; i++)
		fds[i] = ctl_connect();
	check = ctl_connect();
	/* A follower that never reads what it is sent. */
	lazy = ctl_connect();
	if (send_all(lazy, "{\"cmd\":\"events\",\"follow\":true}\n", 32))
		fail("cannot start the lazy follower");
	end = now_s() + seconds;
	next_check = now_s() + 1;
	while (now_s() < end) {
		for (int i = 0; i < NCONN; i++) {
			size_t n = mutate(buf, sizeof(buf) - 1);
			char drain[65536];

			buf[n++] = '\n';
			if (send_all(fds[i], buf, n))
				fail("the VMM closed fuzz connection %d after %" PRIu64 " lines", i,
				     sent);
			sent++;
			/* Read whatever responses arrived (non-blocking). */
			for (;;) {
				ssize_t k = recv(fds[i], drain, sizeof(drain), MSG_DONTWAIT);

				if (k <= 0)
					break;
				for (ssize_t j = 0; j < k; j++)
					lines += drain[j] == '\n';
			}
		}
		usleep(2500); /* about 400 lines per second per connection */
		if (vm_exited())
			fail("vmce-vm died under fuzzing (status %d) after %" PRIu64 " lines",
			     vm_status, sent);
		if (now_s() > next_check) {
			/* A client that sends half a request and vanishes. */
			int half = ctl_connect();

			(void)send_all(half, "{\"cmd\":\"inje", 12);
			close(half);
			partial++;
			r = ctl(check, "{\"cmd\":\"status\"}");
			expect(r, "ok", "true", "status during fuzzing");
			expect(r, "state", "\"running\"", "status during fuzzing");
			free(r);
			next_check = now_s() + 1;
		}
	}
	r = ctl(check, "{\"cmd\":\"status\"}");
	expect(r, "ok", "true", "status after fuzzing");
	free(r);
	printf("fuzz: %" PRIu64 " lines sent in %.0f s, %" PRIu64 " response lines read, %" PRIu64
	       " half requests\n",
	       sent, seconds, lines, partial);
	if (lines == 0)
		fail("no response to any fuzz line");
	for (int i = 0; i < NCONN; i++)
		close(fds[i]);
	quit_vm(check);
	close(lazy);
	close(check);
	return 0;
}

int main(int argc, char **argv)
{
	const char *sc;
	int fd, ret;

	if (argc < 3) {
		fprintf(stderr, "usage: vmce-e2e VMCE_VM SCENARIO [SECONDS]\n");
		return 2;
	}
	vmm_path = argv[1];
	sc = argv[2];
	fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		printf("SKIP: /dev/kvm is not usable (%s): the e2e tests need KVM\n",
		       strerror(errno));
		return 77;
	}
	close(fd);
	signal(SIGPIPE, SIG_IGN);
	snprintf(dir, sizeof(dir), "/tmp/vmce-e2e-%s-XXXXXX", sc);
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(sock_path, sizeof(sock_path), "%s/ctl", dir);
	snprintf(console_path, sizeof(console_path), "%s/console", dir);
	snprintf(stderr_path, sizeof(stderr_path), "%s/stderr", dir);
	snprintf(events_path, sizeof(events_path), "%s/events", dir);

	if (!strcmp(sc, "srao"))
		ret = scenario_srao(false);
	else if (!strcmp(sc, "srao_hybrid"))
		ret = scenario_srao(true);
	else if (!strcmp(sc, "srar"))
		ret = scenario_srar();
	else if (!strcmp(sc, "ce"))
		ret = scenario_ce();
	else if (!strcmp(sc, "outside"))
		ret = scenario_outside();
	else if (!strcmp(sc, "fatal"))
		ret = scenario_fatal(false);
	else if (!strcmp(sc, "fatal_log_only"))
		ret = scenario_fatal(true);
	else if (!strcmp(sc, "nested"))
		ret = scenario_nested();
	else if (!strcmp(sc, "burst2"))
		ret = scenario_burst(2, false);
	else if (!strcmp(sc, "burst4"))
		ret = scenario_burst(4, false);
	else if (!strcmp(sc, "burst4_hybrid"))
		ret = scenario_burst(4, true);
	else if (!strcmp(sc, "nobroadcast"))
		ret = scenario_nobroadcast(false);
	else if (!strcmp(sc, "nobroadcast_text"))
		ret = scenario_nobroadcast(true);
	else if (!strcmp(sc, "image"))
		ret = scenario_image();
	else if (!strcmp(sc, "console"))
		ret = scenario_console();
	else if (!strcmp(sc, "elf"))
		ret = scenario_elf();
	else if (!strcmp(sc, "broadcast4"))
		ret = scenario_broadcast4();
	else if (!strcmp(sc, "lmce"))
		ret = scenario_lmce();
	else if (!strcmp(sc, "fuzz")) {
		const char *env = getenv("VMCE_E2E_FUZZ_SECONDS");
		double s = argc > 3 ? atof(argv[3]) : 5;

		if (env && atof(env) > 0)
			s = atof(env);
		ret = scenario_fuzz(s);
	} else {
		fprintf(stderr, "unknown scenario %s\n", sc);
		ret = 2;
	}
	if (ret == 0)
		printf("PASS: %s\n", sc);
	cleanup();
	return ret;
}
