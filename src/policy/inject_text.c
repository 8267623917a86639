// SPDX-License-Identifier: MIT
/*
 * The input language of Linux's mce-inject tool, read into host error descriptions.
 *
 * Grammar (that of mce-inject's mce.y/mce.lex; keywords are case-insensitive, line breaks are
 * white space, '#' starts a comment that runs to the end of the line):
 *
 *   input     := record*
 *   record    := start term+
 *   start     := CPU number [number]                 # CPU, optionally its bank
 *              | MCE                                 # CPU 0
 *              | CPU number ':' MACHINE CHECK EXCEPTION ':' number BANK number ':' number
 *                                                    # the kernel's panic line: MCG_STATUS,
 *                                                    # bank, STATUS
 *   term      := STATUS status-word*     (replaces STATUS with the OR of its words)
 *              | MCGSTATUS mcg-word*     (replaces MCG_STATUS likewise)
 *              | BANK number | ADDR number (also sets ADDRV) | MISC number (also sets MISCV)
 *              | RIP number [':' number | ':' '<' number '>' '{' word '}']
 *              | NOBROADCAST
 *              | TSC number | TIME number | SOCKETID number | APICID number | MCGCAP number
 *              | PROCESSOR number ':' number
 *              | HOLD | IN_IRQ | IN_PROC | POLL | EXCP | IRQBROADCAST | NMIBROADCAST
 *   status-word := number | VAL | OVER | UC | EN | PCC | S | AR | TES_YELLOW
 *              | CORRECTED (VAL|EN) | UNCORRECTED (VAL|UC|EN) | FATAL (VAL|UC|EN|PCC)
 *              | UCNA (0) | SRAO (S) | SRAR (S|AR)
 *   mcg-word  := number | RIPV | EIPV | MCIP | LMCES | SEAM_NR
 *   number    := C syntax: 0x hex, leading-0 octal, decimal; at most 64 bits
 *
 * A new record starts only at CPU or MCE (a blank line does not end one, as in mce-inject).
 * Later terms overwrite earlier ones, so a STATUS after ADDR drops ADDRV, as in mce-inject;
 * the policy then sees no valid address and its reason says so.  The terms that only steer how
 * the host kernel injects (TSC ... NMIBROADCAST) are accepted and ignored: a guest error has no
 * such context.  LMCES in MCGSTATUS marks the error as local.
 *
 * Bounds: the text is at most VMCE_INJECT_TEXT_MAX bytes, a line at most VMCE_INJECT_LINE_MAX,
 * at most `max` records; NUL bytes are refused.  Every error names the line and the token.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "policy/policy_internal.h"

#define VMCE_INJECT_TEXT_MAX (1u << 20)
#define VMCE_INJECT_LINE_MAX 1024u
#define TOKEN_SHOW_MAX	     32u

enum kw {
	KW_NONE = 0,
	/* record starts and terms */
	KW_CPU,
	KW_MCE,
	KW_STATUS,
	KW_MCGSTATUS,
	KW_BANK,
	KW_ADDR,
	KW_MISC,
	KW_RIP,
	KW_NOBROADCAST,
	KW_TSC,
	KW_TIME,
	KW_SOCKETID,
	KW_APICID,
	KW_MCGCAP,
	KW_PROCESSOR,
	KW_HOLD,
	KW_IN_IRQ,
	KW_IN_PROC,
	KW_POLL,
	KW_EXCP,
	KW_IRQBROADCAST,
	KW_NMIBROADCAST,
	/* the panic line */
	KW_MACHINE,
	KW_CHECK,
	KW_EXCEPTION,
	/* value words */
	KW_STATUS_WORD,
	KW_MCG_WORD,
};

struct keyword {
	const char *name;
	enum kw kw;
	uint64_t val;
};

static const struct keyword keywords[] = {
	{"CPU", KW_CPU, 0},
	{"MCE", KW_MCE, 0},
	{"STATUS", KW_STATUS, 0},
	{"MCGSTATUS", KW_MCGSTATUS, 0},
	{"BANK", KW_BANK, 0},
	{"ADDR", KW_ADDR, 0},
	{"MISC", KW_MISC, 0},
	{"RIP", KW_RIP, 0},
	{"NOBROADCAST", KW_NOBROADCAST, 0},
	{"TSC", KW_TSC, 0},
	{"TIME", KW_TIME, 0},
	{"SOCKETID", KW_SOCKETID, 0},
	{"APICID", KW_APICID, 0},
	{"MCGCAP", KW_MCGCAP, 0},
	{"PROCESSOR", KW_PROCESSOR, 0},
	{"HOLD", KW_HOLD, 0},
	{"IN_IRQ", KW_IN_IRQ, 0},
	{"IN_PROC", KW_IN_PROC, 0},
	{"POLL", KW_POLL, 0},
	{"EXCP", KW_EXCP, 0},
	{"IRQBROADCAST", KW_IRQBROADCAST, 0},
	{"NMIBROADCAST", KW_NMIBROADCAST, 0},
	{"MACHINE", KW_MACHINE, 0},
	{"CHECK", KW_CHECK, 0},
	{"EXCEPTION", KW_EXCEPTION, 0},
	{"VAL", KW_STATUS_WORD, VMCE_MCI_STATUS_VAL},
	{"OVER", KW_STATUS_WORD, VMCE_MCI_STATUS_OVER},
	{"UC", KW_STATUS_WORD, VMCE_MCI_STATUS_UC},
	{"EN", KW_STATUS_WORD, VMCE_MCI_STATUS_EN},
	{"PCC", KW_STATUS_WORD, VMCE_MCI_STATUS_PCC},
	{"S", KW_STATUS_WORD, VMCE_MCI_STATUS_S},
	{"AR", KW_STATUS_WORD, VMCE_MCI_STATUS_AR},
	{"TES_YELLOW", KW_STATUS_WORD, 1ull << 54},
	{"CORRECTED", KW_STATUS_WORD, VMCE_MCI_STATUS_VAL | VMCE_MCI_STATUS_EN},
	{"UNCORRECTED", KW_STATUS_WORD,
	 VMCE_MCI_STATUS_VAL | VMCE_MCI_STATUS_UC | VMCE_MCI_STATUS_EN},
	{"FATAL", KW_STATUS_WORD,
	 VMCE_MCI_STATUS_VAL | VMCE_MCI_STATUS_UC | VMCE_MCI_STATUS_EN | VMCE_MCI_STATUS_PCC},
	{"UCNA", KW_STATUS_WORD, 0},
	{"SRAO", KW_STATUS_WORD, VMCE_MCI_STATUS_S},
	{"SRAR", KW_STATUS_WORD, VMCE_MCI_STATUS_S | VMCE_MCI_STATUS_AR},
	{"RIPV", KW_MCG_WORD, VMCE_MCG_STATUS_RIPV},
	{"EIPV", KW_MCG_WORD, VMCE_MCG_STATUS_EIPV},
	{"MCIP", KW_MCG_WORD, VMCE_MCG_STATUS_MCIP},
	{"LMCES", KW_MCG_WORD, VMCE_MCG_STATUS_LMCES},
	{"SEAM_NR", KW_MCG_WORD, 1ull << 12},
};

enum tok_type { T_EOF, T_NUM, T_WORD, T_PUNCT };

struct tok {
	enum tok_type type;
	const struct keyword *k; /* T_WORD: the keyword, or NULL for an unknown word */
	uint64_t num;
	char punct;
	unsigned line;
	char show[TOKEN_SHOW_MAX + 4]; /* printable copy for messages */
};

struct parser {
	const char *s;
	size_t len, pos;
	unsigned line;
	size_t line_start;
	struct vmce_err *err;
	struct tok cur; /* lookahead */
};

static void show_token(struct tok *t, const char *s, size_t n)
{
	size_t i, m = n < TOKEN_SHOW_MAX ? n : TOKEN_SHOW_MAX;

	for (i = 0; i < m; i++)
		t->show[i] = isprint((unsigned char)s[i]) ? s[i] : '?';
	if (n > m)
		memcpy(t->show + i, "...", 4);
	else
		t->show[i] = '\0';
}

static int perr(struct parser *p, unsigned line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int perr(struct parser *p, unsigned line, const char *fmt, ...)
{
	char msg[200];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return vmce__fail(p->err, -EINVAL, "line %u: %s", line, msg);
}

static bool is_word_start(char c)
{
	return c == '_' || isalpha((unsigned char)c);
}

static bool is_word_char(char c)
{
	return c == '_' || isalnum((unsigned char)c);
}

/* A number in C syntax; the whole token [0-9A-Za-z_]* must be one. */
static int lex_number(struct parser *p, const char *s, size_t n, uint64_t *out)
{
	unsigned base = 10;
	size_t i = 0;
	uint64_t v = 0;
	struct tok t;

	show_token(&t, s, n);
	if (n >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		base = 16;
		i = 2;
		if (n == 2)
			return perr(p, p->line, "malformed number '%s': no hex digits after 0x",
				    t.show);
	} else if (n >= 2 && s[0] == '0') {
		base = 8;
		i = 1;
	}
	for (; i < n; i++) {
		unsigned d;
		char c = s[i];

		if (c >= '0' && c <= '9')
			d = (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			d = (unsigned)(c - 'a') + 10;
		else if (c >= 'A' && c <= 'F')
			d = (unsigned)(c - 'A') + 10;
		else
			d = 99;
		if (d >= base)
			return perr(p, p->line, "malformed number '%s'%s", t.show,
				    base == 8 && d < 10 ? " (a leading 0 means octal)" : "");
		if (v > (UINT64_MAX - d) / base)
			return perr(p, p->line, "number '%s' does not fit in 64 bits", t.show);
		v = v * base + d;
	}
	*out = v;
	return 0;
}

/* Read the next token into p->cur. */
static int next(struct parser *p)
{
	struct tok *t = &p->cur;

	for (;;) {
		char c;

		if (p->pos - p->line_start > VMCE_INJECT_LINE_MAX)
			return perr(p, p->line, "line is longer than %u characters",
				    VMCE_INJECT_LINE_MAX);
		if (p->pos >= p->len) {
			memset(t, 0, sizeof(*t));
			t->type = T_EOF;
			t->line = p->line;
			strcpy(t->show, "end of text");
			return 0;
		}
		c = p->s[p->pos];
		if (c == '\n') {
			p->pos++;
			p->line++;
			p->line_start = p->pos;
		} else if (c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v') {
			p->pos++;
		} else if (c == '#') {
			while (p->pos < p->len && p->s[p->pos] != '\n') {
				if (p->s[p->pos] == '\0')
					return perr(p, p->line, "NUL byte in a comment");
				p->pos++;
				if (p->pos - p->line_start > VMCE_INJECT_LINE_MAX)
					return perr(p, p->line, "line is longer than %u characters",
						    VMCE_INJECT_LINE_MAX);
			}
		} else {
			break;
		}
	}

	memset(t, 0, sizeof(*t));
	t->line = p->line;
	{
		const char *s = p->s + p->pos;
		char c = *s;
		size_t n = 0;

		if (c >= '0' && c <= '9') {
			while (p->pos + n < p->len && is_word_char(s[n]))
				n++;
			t->type = T_NUM;
			show_token(t, s, n);
			p->pos += n;
			return lex_number(p, s, n, &t->num);
		}
		if (is_word_start(c)) {
			while (p->pos + n < p->len && is_word_char(s[n]))
				n++;
			t->type = T_WORD;
			show_token(t, s, n);
			p->pos += n;
			for (size_t i = 0; i < VMCE_ARRAY_SIZE(keywords); i++)
				if (strlen(keywords[i].name) == n &&
				    !strncasecmp(keywords[i].name, s, n)) {
					t->k = &keywords[i];
					break;
				}
			return 0;
		}
		if (c == ':' || c == '{' || c == '}' || c == '<' || c == '>') {
			t->type = T_PUNCT;
			t->punct = c;
			show_token(t, s, 1);
			p->pos++;
			return 0;
		}
		if (c == '\0')
			return perr(p, p->line, "NUL byte in the text");
		show_token(t, s, 1);
		return perr(p, p->line, "unrecognized character '%s'", t->show);
	}
}

static bool is_kw(const struct tok *t, enum kw kw)
{
	return t->type == T_WORD && t->k && t->k->kw == kw;
}

static int expect_num(struct parser *p, const char *after, uint64_t *out)
{
	int rc;

	if (p->cur.type != T_NUM)
		return perr(p, p->cur.line, "expected a number after %s, found '%s'", after,
			    p->cur.show);
	*out = p->cur.num;
	rc = next(p);
	return rc;
}

static int expect_punct(struct parser *p, char c, const char *where)
{
	if (p->cur.type != T_PUNCT || p->cur.punct != c)
		return perr(p, p->cur.line, "expected '%c' %s, found '%s'", c, where, p->cur.show);
	return next(p);
}

static int expect_kw(struct parser *p, enum kw kw, const char *name, const char *where)
{
	if (!is_kw(&p->cur, kw))
		return perr(p, p->cur.line, "expected %s %s, found '%s'", name, where, p->cur.show);
	return next(p);
}

/* OR of the words of a STATUS or MCGSTATUS list. */
static int value_list(struct parser *p, enum kw words, uint64_t *out)
{
	uint64_t v = 0;
	int rc;

	for (;;) {
		if (p->cur.type == T_NUM)
			v |= p->cur.num;
		else if (is_kw(&p->cur, words))
			v |= p->cur.k->val;
		else
			break;
		rc = next(p);
		if (rc)
			return rc;
	}
	*out = v;
	return 0;
}

static int parse_rip(struct parser *p, struct vmce_host_error *e)
{
	uint64_t cs, ip = 0;
	int rc = expect_num(p, "RIP", &ip);

	if (rc)
		return rc;
	e->rip = ip;
	if (!(p->cur.type == T_PUNCT && p->cur.punct == ':'))
		return 0;
	cs = ip;
	if ((rc = next(p)))
		return rc;
	if (p->cur.type == T_NUM) {
		e->rip = p->cur.num;
		return next(p);
	}
	if ((rc = expect_punct(p, '<', "after 'RIP cs:'")) ||
	    (rc = expect_num(p, "'RIP cs:<'", &ip)) ||
	    (rc = expect_punct(p, '>', "after the RIP value")) ||
	    (rc = expect_punct(p, '{', "after 'RIP cs:<ip>'")))
		return rc;
	if (p->cur.type != T_WORD)
		return perr(p, p->cur.line, "expected a symbol name inside '{}', found '%s'",
			    p->cur.show);
	if ((rc = next(p)) || (rc = expect_punct(p, '}', "after the symbol name")))
		return rc;
	(void)cs;
	e->rip = ip;
	return 0;
}

/* One term; returns 1 when the current token does not start a term. */
static int parse_term(struct parser *p, struct vmce_host_error *e)
{
	const struct tok t = p->cur;
	uint64_t v = 0;
	int rc;

	if (t.type != T_WORD || !t.k)
		return 1;
	switch (t.k->kw) {
	case KW_STATUS:
	case KW_MCGSTATUS:
	case KW_BANK:
	case KW_ADDR:
	case KW_MISC:
	case KW_RIP:
	case KW_TSC:
	case KW_TIME:
	case KW_SOCKETID:
	case KW_APICID:
	case KW_MCGCAP:
	case KW_PROCESSOR:
	case KW_NOBROADCAST:
	case KW_HOLD:
	case KW_IN_IRQ:
	case KW_IN_PROC:
	case KW_POLL:
	case KW_EXCP:
	case KW_IRQBROADCAST:
	case KW_NMIBROADCAST:
		break;
	default:
		return 1;
	}
	if ((rc = next(p)))
		return rc;
	switch (t.k->kw) {
	case KW_STATUS:
		rc = value_list(p, KW_STATUS_WORD, &e->status);
		break;
	case KW_MCGSTATUS:
		rc = value_list(p, KW_MCG_WORD, &e->mcg_status);
		e->local = e->mcg_status & VMCE_MCG_STATUS_LMCES;
		break;
	case KW_BANK:
		rc = expect_num(p, "BANK", &v);
		if (!rc && v > 255)
			return perr(p, t.line, "BANK %" PRIu64 " is out of range (0 to 255)", v);
		e->bank = (int)v;
		break;
	case KW_ADDR:
		rc = expect_num(p, "ADDR", &e->addr);
		e->status |= VMCE_MCI_STATUS_ADDRV;
		e->addr_kind = VMCE_ADDR_GPA; /* replaced by the caller's kind */
		break;
	case KW_MISC:
		rc = expect_num(p, "MISC", &e->misc);
		e->status |= VMCE_MCI_STATUS_MISCV;
		break;
	case KW_RIP:
		rc = parse_rip(p, e);
		break;
	case KW_PROCESSOR:
		if (!(rc = expect_num(p, "PROCESSOR", &v)) &&
		    !(rc = expect_punct(p, ':', "after 'PROCESSOR vendor'")))
			rc = expect_num(p, "'PROCESSOR vendor:'", &v);
		break;
	case KW_TSC:
	case KW_TIME:
	case KW_SOCKETID:
	case KW_APICID:
	case KW_MCGCAP:
		rc = expect_num(p, t.k->name, &v);
		break;
	case KW_NOBROADCAST:
		e->no_broadcast = true;
		break;
	default: /* HOLD, IN_IRQ, IN_PROC, POLL, EXCP, IRQBROADCAST, NMIBROADCAST */
		break;
	}
	return rc;
}

static int parse_start(struct parser *p, struct vmce_host_error *e)
{
	const struct tok t = p->cur;
	uint64_t v = 0;
	int rc;

	vmce_host_error_init(e);
	e->origin = VMCE_ORIGIN_INJECT;
	e->bank = 0;
	e->vcpu = 0;
	if (is_kw(&t, KW_MCE))
		return next(p);
	if (!is_kw(&t, KW_CPU)) {
		if (t.type == T_WORD && !t.k)
			return perr(p, t.line, "unknown keyword '%s'", t.show);
		return perr(p, t.line, "'%s': a record must start with CPU or MCE", t.show);
	}
	if ((rc = next(p)) || (rc = expect_num(p, "CPU", &v)))
		return rc;
	if (v >= VMCE_MAX_VCPUS)
		return perr(p, t.line, "CPU %" PRIu64 " is out of range (0 to %d)", v,
			    VMCE_MAX_VCPUS - 1);
	e->vcpu = (int)v;
	if (p->cur.type == T_NUM) {
		if (p->cur.num > 255)
			return perr(p, p->cur.line, "bank '%s' is out of range (0 to 255)",
				    p->cur.show);
		e->bank = (int)p->cur.num;
		return next(p);
	}
	if (p->cur.type == T_PUNCT && p->cur.punct == ':') {
		/* CPU n: Machine Check Exception: mcgstatus Bank b: status */
		const char *w = "in the panic-line form";

		if ((rc = next(p)) || (rc = expect_kw(p, KW_MACHINE, "MACHINE", w)) ||
		    (rc = expect_kw(p, KW_CHECK, "CHECK", w)) ||
		    (rc = expect_kw(p, KW_EXCEPTION, "EXCEPTION", w)) ||
		    (rc = expect_punct(p, ':', "after 'Machine Check Exception'")) ||
		    (rc = expect_num(p, "'Machine Check Exception:'", &e->mcg_status)) ||
		    (rc = expect_kw(p, KW_BANK, "BANK", w)) || (rc = expect_num(p, "BANK", &v)))
			return rc;
		if (v > 255)
			return perr(p, t.line, "BANK %" PRIu64 " is out of range (0 to 255)", v);
		e->bank = (int)v;
		if ((rc = expect_punct(p, ':', "after the bank number")) ||
		    (rc = expect_num(p, "'Bank n:'", &e->status)))
			return rc;
		e->local = e->mcg_status & VMCE_MCG_STATUS_LMCES;
	}
	return 0;
}

int vmce_parse_inject_text(const char *text, size_t len, enum vmce_addr_kind kind,
			   struct vmce_host_error *out, size_t max, struct vmce_err *err)
{
	struct parser p = {.s = text, .len = len, .line = 1, .err = err};
	size_t n = 0;
	int rc;

	if (!text && len)
		return vmce__fail(err, -EINVAL, "no text given");
	if (!out && max)
		return vmce__fail(err, -EINVAL, "no output array given");
	if (len > VMCE_INJECT_TEXT_MAX)
		return vmce__fail(err, -EINVAL, "text is %zu bytes: more than the limit of %u", len,
				  VMCE_INJECT_TEXT_MAX);
	if ((unsigned)kind > VMCE_ADDR_GPA || kind == VMCE_ADDR_NONE)
		return vmce__fail(err, -EINVAL, "address kind %d is not hva, hpa or gpa",
				  (int)kind);
	if ((rc = next(&p)))
		return rc;
	while (p.cur.type != T_EOF) {
		struct vmce_host_error e;
		unsigned start_line = p.cur.line, terms = 0;

		if ((rc = parse_start(&p, &e)))
			return rc;
		for (;;) {
			rc = parse_term(&p, &e);
			if (rc < 0)
				return rc;
			if (rc > 0)
				break;
			terms++;
		}
		if (p.cur.type != T_EOF && !is_kw(&p.cur, KW_CPU) && !is_kw(&p.cur, KW_MCE)) {
			const struct keyword *k = p.cur.type == T_WORD ? p.cur.k : NULL;

			if (p.cur.type == T_WORD && !k)
				return perr(&p, p.cur.line, "unknown keyword '%s'", p.cur.show);
			if (k && (k->kw == KW_STATUS_WORD || k->kw == KW_MCG_WORD))
				return perr(&p, p.cur.line, "'%s' is a %s flag: not valid here",
					    p.cur.show,
					    k->kw == KW_STATUS_WORD ? "STATUS" : "MCGSTATUS");
			return perr(&p, p.cur.line, "unexpected '%s' (expected a field keyword)",
				    p.cur.show);
		}
		if (!terms)
			return perr(&p, start_line,
				    "the record has no fields (STATUS, ADDR, MISC, ...)");
		if (n >= max)
			return perr(&p, start_line, "more than %zu record(s)", max);
		if (e.addr_kind != VMCE_ADDR_NONE)
			e.addr_kind = kind;
		out[n++] = e;
	}
	return n > INT32_MAX ? INT32_MAX : (int)n;
}
