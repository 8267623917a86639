// SPDX-License-Identifier: MIT
/*
 * Streams written by earlier builds (tests/fixtures/migrate-v*.stream) still restore to exactly
 * the state recorded next to them (.expect).  Usage: test_migrate_fixtures FIXTURES_DIR
 */
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <vmce/migrate.h>

#include "mig_util.h"

#define MIN_FIXTURES 6

static const char *dir;

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	long n;

	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
		buf = malloc((size_t)n + 1);
		if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
			free(buf);
			buf = NULL;
		} else if (buf) {
			buf[n] = '\0';
			*len = (size_t)n;
		}
	}
	fclose(f);
	return buf;
}

static void check_one(const char *stream_path)
{
	char expect_path[600], *stream, *expect, *dump;
	size_t slen, elen, n;
	struct vmce_vm_config cfg;
	struct vmce_vm *vm, *again;
	struct vmce_err err;
	unsigned nr_vcpus = 0;
	void *resaved;

	snprintf(expect_path, sizeof(expect_path), "%.*s.expect",
		 (int)(strlen(stream_path) - strlen(".stream")), stream_path);
	stream = slurp(stream_path, &slen);
	expect = slurp(expect_path, &elen);
	assert_non_null(stream);
	assert_non_null(expect);
	assert_non_null(strstr(expect, "\nvcpus "));
	nr_vcpus = (unsigned)atoi(strstr(expect, "\nvcpus ") + 7);

	/* A destination that backs everything of the guest's vendor. */
	vmce_vm_config_default(&cfg);
	assert_int_equal(vmce_stream_profile(stream, slen, &cfg.profile, &err), 0);
	mu_ceiling_profile(cfg.profile.vendor, &cfg.profile);
	cfg.nr_vcpus = nr_vcpus;
	assert_int_equal(vmce_vm_create(&cfg, &vm, &err), 0);
	if (vmce_restore(vm, stream, slen, &err)) {
		fprintf(stderr, "%s: %s\n", stream_path, err.msg);
		fail();
	}
	dump = mu_dump(vm);
	if (strcmp(dump, expect)) {
		fprintf(stderr, "%s: restored state differs from %s:\n%s\n", stream_path,
			expect_path, dump);
		fail();
	}
	free(dump);
	/* While this build writes the fixture's version, it writes the same bytes (all but the
	 * writer section, which ends the stream: the writer's version, its source event number,
	 * and the CRC); the writer section names this build. */
	assert_int_equal(vmce_save_alloc(vm, &resaved, &n, &err), 0);
	if (!strncmp(strrchr(stream_path, '/') + 1, "migrate-v1-", 11) &&
	    VMCE_STREAM_VERSION == 1) {
		const unsigned char *w = (const unsigned char *)resaved + n - 20;

		assert_int_equal(n, slen);
		assert_memory_equal(resaved, stream, n - 20);
		assert_int_equal(w[0] | w[1] << 8, VMCE_VERSION_MAJOR);
		assert_int_equal(w[2] | w[3] << 8, VMCE_VERSION_MINOR);
	}
	/* And that stream restores to the same state again. */
	assert_int_equal(vmce_vm_create(&cfg, &again, &err), 0);
	assert_int_equal(vmce_restore(again, resaved, n, &err), 0);
	dump = mu_dump(again);
	assert_string_equal(dump, expect);
	free(dump);
	free(resaved);
	vmce_vm_destroy(again);
	vmce_vm_destroy(vm);
	free(stream);
	free(expect);
}

static void test_fixtures(void **state)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	unsigned count = 0;

	(void)state;
	assert_non_null(d);
	while ((e = readdir(d))) {
		size_t l = strlen(e->d_name);
		char path[600];

		if (strncmp(e->d_name, "migrate-v", 9) || l < 8 ||
		    strcmp(e->d_name + l - 7, ".stream"))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		check_one(path);
		printf("fixture %s: restored as expected\n", e->d_name);
		count++;
	}
	closedir(d);
	assert_true(count >= MIN_FIXTURES);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {cmocka_unit_test(test_fixtures)};

	if (argc != 2) {
		fprintf(stderr, "usage: test_migrate_fixtures FIXTURES_DIR\n");
		return 2;
	}
	dir = argv[1];
	return cmocka_run_group_tests(tests, NULL, NULL);
}
