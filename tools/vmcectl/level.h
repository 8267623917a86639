/* SPDX-License-Identifier: MIT */
/*
 * level.h - `vmcectl profile level`: read one host description per file (hostdesc.h), level
 * the pool with the library (vmce_level_descs()) and print the result.
 */
#ifndef VMCECTL_LEVEL_H
#define VMCECTL_LEVEL_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>
#include <vmce/migrate.h>

#include "hostdesc.h"

/* The output formats of the result. */
enum level_format {
	LEVEL_TEXT, /* vmce_level_format(): "profile: ..." and one "field: text" line per note */
	LEVEL_JSON, /* one JSON object, level_result_json() */
};

/* Level the pool of host description files of format in; want_text: the --want profile or NULL.
 * Prints the result on stdout (for QEMU hosts with the -object option: a "qemu: -object ..."
 * line, or the JSON member "qemu_object") and returns an exit status (a message on stderr when
 * not EXIT_OK). */
int profile_level(char **files, size_t n, const char *want_text, enum level_format fmt,
		  enum host_desc_format in);

/* The result as JSON: {"profile":"intel,banks=8,ser,tes,ctl","notes":[{"field":"banks",
 * "hosts":"b","text":"..."},...]} (NULL when out of memory). */
json_t *level_result_json(const struct vmce_level_result *r);

#endif /* VMCECTL_LEVEL_H */
