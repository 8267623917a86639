// SPDX-License-Identifier: MIT
/*
 * vmcectl profile level (level.h): host description files in, the levelled profile out.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "hostdesc.h"
#include "level.h"
#include "vmcectl.h"

/* Read a host description file: at most HOST_DESC_MAX_LEN bytes, NUL-terminated. */
static char *read_host_file(const char *path)
{
	char *buf = malloc(HOST_DESC_MAX_LEN + 2);
	FILE *f;
	size_t n;

	if (!buf) {
		fail("%.200s: out of memory", path);
		return NULL;
	}
	f = fopen(path, "rb");
	if (!f) {
		fail("%.200s: cannot open: %s", path, strerror(errno));
		free(buf);
		return NULL;
	}
	n = fread(buf, 1, HOST_DESC_MAX_LEN + 1, f);
	if (ferror(f)) {
		fail("%.200s: cannot read: %s", path, strerror(errno));
		fclose(f);
		free(buf);
		return NULL;
	}
	fclose(f);
	if (n > HOST_DESC_MAX_LEN) {
		fail("%.200s: longer than %d bytes (a host description is one small JSON object)",
		     path, HOST_DESC_MAX_LEN);
		free(buf);
		return NULL;
	}
	if (memchr(buf, '\0', n)) {
		fail("%.200s: contains a NUL byte (not a JSON text)", path);
		free(buf);
		return NULL;
	}
	buf[n] = '\0';
	return buf;
}

/* Read and parse every file; the message names the file. */
static int read_hosts(char **files, size_t n, enum host_desc_format in,
		      struct vmce_host_desc *hosts)
{
	struct vmce_err err = {{0}};

	for (size_t i = 0; i < n; i++) {
		char *text = read_host_file(files[i]);
		int rc;

		if (!text)
			return EXIT_FAIL;
		rc = host_desc_parse(text, strlen(text), in, &hosts[i], &err);
		free(text);
		if (rc)
			return fail("%.200s: %s", files[i], err.msg);
	}
	return 0;
}

json_t *level_result_json(const struct vmce_level_result *r)
{
	json_t *notes = json_array();
	char prof[128];

	vmce_profile_format(&r->profile, prof, sizeof(prof));
	for (size_t i = 0; notes && i < r->nr_notes && i < VMCE_LEVEL_MAX_NOTES; i++) {
		const struct vmce_level_note *nt = &r->notes[i];

		if (json_array_append_new(notes, json_pack("{s:s, s:s, s:s}", "field", nt->field,
							   "hosts", nt->hosts, "text", nt->text))) {
			json_decref(notes);
			return NULL;
		}
	}
	return json_pack("{s:s, s:o}", "profile", prof, "notes", notes);
}

/* QEMU's -object option value for a profile: vmce,id=vmce0,profile=intel,,banks=2,,... */
static void level_qemu_object(const struct vmce_profile *p, char *buf, size_t len)
{
	char prof[128];
	size_t o = 0;

	vmce_profile_format(p, prof, sizeof(prof));
	o = (size_t)snprintf(buf, len, "vmce,id=vmce0,profile=");
	/* QEMU's option syntax: a comma inside a value is doubled */
	for (const char *c = prof; *c && o + 3 < len; c++) {
		if (*c == ',')
			buf[o++] = ',';
		buf[o++] = *c;
	}
	buf[o < len ? o : len - 1] = '\0';
}

static int print_result(const struct vmce_level_result *r, enum level_format fmt,
			enum host_desc_format in)
{
	char object[320];
	json_t *j;
	char *out;
	int len;

	level_qemu_object(&r->profile, object, sizeof(object));
	if (fmt == LEVEL_JSON) {
		j = level_result_json(r);
		if (j && in == HOST_DESC_QEMU &&
		    json_object_set_new(j, "qemu_object", json_string(object))) {
			json_decref(j);
			j = NULL;
		}
		out = j ? json_dumps(j, JSON_COMPACT) : NULL;
		json_decref(j);
	} else {
		len = vmce_level_format(r, NULL, 0);
		out = malloc((size_t)len + 1);
		if (out)
			vmce_level_format(r, out, (size_t)len + 1);
	}
	if (!out)
		return fail("out of memory");
	fputs(out, stdout);
	if (fmt == LEVEL_JSON)
		putchar('\n');
	else if (in == HOST_DESC_QEMU)
		printf("qemu: -object %s\n", object);
	free(out);
	return EXIT_OK;
}

int profile_level(char **files, size_t n, const char *want_text, enum level_format fmt,
		  enum host_desc_format in)
{
	struct vmce_level_result *res;
	struct vmce_host_desc *hosts;
	const struct vmce_profile *wantp = NULL;
	struct vmce_err err = {{0}};
	struct vmce_profile want;
	int rc;

	if (n > VMCE_LEVEL_MAX_HOSTS)
		return usage_error("%zu host files (at most %d)", n, VMCE_LEVEL_MAX_HOSTS);
	if (want_text &&
	    (vmce_profile_parse(want_text, &want, &err) || vmce_profile_validate(&want, &err)))
		return usage_error("--want: invalid profile '%.64s': %s", want_text, err.msg);
	if (want_text)
		wantp = &want;
	hosts = calloc(n, sizeof(*hosts));
	res = calloc(1, sizeof(*res));
	if (!hosts || !res)
		rc = fail("out of memory");
	else
		rc = read_hosts(files, n, in, hosts);
	if (!rc && !want_text && in == HOST_DESC_QEMU) {
		/* The -object option is the profile of every new guest: vmce's default (few
		 * banks: each is an MSR exit), not all the pool could back */
		vmce_profile_default(&want);
		if (hosts[0].vendor == VMCE_VENDOR_AMD) {
			want.vendor = VMCE_VENDOR_AMD;
			want.caps = VMCE_CAP_SUCCOR;
		}
		wantp = &want;
	}
	if (!rc && vmce_level_descs(hosts, n, wantp, res, &err))
		rc = fail("no profile fits the pool: %s", err.msg);
	if (!rc)
		rc = print_result(res, fmt, in);
	free(hosts);
	free(res);
	return rc;
}
