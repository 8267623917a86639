// SPDX-License-Identifier: MIT
/* Names of classes and verdicts. */
#include "vmce_internal.h"

const char *vmce_class_name(enum vmce_class c)
{
	static const char *const names[] = {"auto", "ce", "ucna", "srao", "srar", "fatal"};

	return (unsigned)c < VMCE_ARRAY_SIZE(names) ? names[c] : "unknown";
}

const char *vmce_verdict_name(enum vmce_verdict v)
{
	static const char *const names[] = {"forward", "drop", "fatal"};

	return (unsigned)v < VMCE_ARRAY_SIZE(names) ? names[v] : "unknown";
}
