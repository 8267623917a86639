// SPDX-License-Identifier: MIT
/*
 * JSON output helpers shared by the plan and event formatters: a bounded buffer that counts
 * what the whole text needs (snprintf-style), and string escaping for reasons, which may quote
 * guest- or operator-supplied text.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "policy/policy_internal.h"

const char *vmce__signal_name(enum vmce_signal s)
{
	switch (s) {
	case VMCE_SIGNAL_MC:
		return "mc";
	case VMCE_SIGNAL_CMCI:
		return "cmci";
	default:
		return "none";
	}
}

void vmce__jput(struct jbuf *b, const char *s, size_t n)
{
	if (b->len && b->pos + 1 < b->len) {
		size_t room = b->len - 1 - b->pos;

		memcpy(b->buf + b->pos, s, n < room ? n : room);
	}
	b->pos += n;
}

void vmce__jprintf(struct jbuf *b, const char *fmt, ...)
{
	char tmp[192];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n > 0)
		vmce__jput(b, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

void vmce__jstr(struct jbuf *b, const char *s, size_t max)
{
	vmce__jput(b, "\"", 1);
	for (size_t i = 0; i < max && s[i]; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '"' || c == '\\') {
			char esc[2] = {'\\', (char)c};

			vmce__jput(b, esc, 2);
		} else if (c < 0x20 || c == 0x7f) {
			vmce__jprintf(b, "\\u%04x", c);
		} else {
			vmce__jput(b, (const char *)&c, 1);
		}
	}
	vmce__jput(b, "\"", 1);
}

int vmce__jfinish(struct jbuf *b)
{
	if (b->len)
		b->buf[b->pos < b->len ? b->pos : b->len - 1] = '\0';
	return b->pos > (size_t)INT32_MAX ? INT32_MAX : (int)b->pos;
}
