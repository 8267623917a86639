/* SPDX-License-Identifier: MIT */
/*
 * hostdesc.h - the host description of pool levelling (docs/migration-format.md §4): one small
 * JSON object per host, read into the library's struct vmce_host_desc.
 */
#ifndef VMCECTL_HOSTDESC_H
#define VMCECTL_HOSTDESC_H

#include <stddef.h>

#include <vmce/migrate.h>

#define HOST_DESC_MAX_LEN 4096 /* bytes of JSON per host */

/* The formats of a host description. */
enum host_desc_format {
	HOST_DESC_VMCE = 0, /* name, vendor, max_banks, caps, vmce_version, backend */
	HOST_DESC_QEMU = 1, /* QEMU's query-vmce-host: its QMP reply {"return": {...}} or the
			     * object alone: name, vendor, max-banks, caps, vmce-version, accel */
};

/*
 * Parse one host description (len bytes of text, no terminator needed) of format fmt.  Returns 0, or -EINVAL
 * with err naming the field (and the byte offset for syntax errors).  The reader is strict:
 * unknown or repeated fields, wrong types, capabilities of the other vendor, control or
 * non-ASCII bytes, escapes other than \" \\ \/, strings over 63 characters and trailing data
 * are refused.
 */
int host_desc_parse(const char *text, size_t len, enum host_desc_format fmt,
		    struct vmce_host_desc *out, struct vmce_err *err);

#endif /* VMCECTL_HOSTDESC_H */
