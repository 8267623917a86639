// SPDX-License-Identifier: MIT
/*
 * Pool levelling: the profile every host of a pool can back, from the hosts' capability
 * descriptions (parsed by the caller: vmcectl reads them from JSON), with a note naming the
 * host that limited each field.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "migrate/migrate_internal.h"

static const struct {
	const char *name;
	uint32_t cap;
	bool intel, amd;
} caps_tab[] = {
	{"ser", VMCE_CAP_SER, true, false},	  {"tes", VMCE_CAP_TES, true, false},
	{"cmci", VMCE_CAP_CMCI, true, false},	  {"lmce", VMCE_CAP_LMCE, true, false},
	{"succor", VMCE_CAP_SUCCOR, false, true}, {"ctl", VMCE_CAP_CTL, true, true},
};

static struct vmce_level_note *note(struct vmce_level_result *r, const char *field)
{
	struct vmce_level_note *n;

	if (r->nr_notes >= VMCE_LEVEL_MAX_NOTES)
		return NULL;
	n = &r->notes[r->nr_notes++];
	memset(n, 0, sizeof(*n));
	snprintf(n->field, sizeof(n->field), "%s", field);
	return n;
}

static void add_host(char *list, size_t len, const char *name)
{
	size_t n = strlen(list);

	if (n + 1 >= len)
		return;
	if (n + strlen(name) + 3 >= len) {
		snprintf(list + n, len - n, "%s...", n ? "," : "");
		return;
	}
	snprintf(list + n, len - n, "%s%s", n ? "," : "", name);
}

static const char *vname(enum vmce_vendor v)
{
	return v == VMCE_VENDOR_AMD ? "amd" : "intel";
}

int vmce_level_descs(const struct vmce_host_desc *hosts, size_t n, const struct vmce_profile *want,
		     struct vmce_level_result *out, struct vmce_err *err)
{
	struct vmce_profile p;
	struct vmce_level_note *nt;
	unsigned min_banks = VMCE_MAX_BANKS;
	size_t limiter = 0;
	struct vmce_err e;

	if (!hosts || !out || n == 0)
		return vmce__fail(err, -EINVAL, "levelling needs at least one host description");
	if (n > VMCE_LEVEL_MAX_HOSTS)
		return vmce__fail(err, -EINVAL, "levelling: %zu hosts (at most %d)", n,
				  VMCE_LEVEL_MAX_HOSTS);
	if (want && vmce_profile_validate(want, &e))
		return vmce__fail(err, -EINVAL, "wanted profile: %s", e.msg);
	for (size_t i = 0; i < n; i++) {
		const struct vmce_host_desc *h = &hosts[i];

		if (!h->name[0] || memchr(h->name, '\0', sizeof(h->name)) == NULL)
			return vmce__fail(err, -EINVAL,
					  "host %zu: field 'name': empty or unterminated", i + 1);
		if (h->vendor != VMCE_VENDOR_INTEL && h->vendor != VMCE_VENDOR_AMD)
			return vmce__fail(err, -EINVAL, "host '%s': field 'vendor': %d is unknown",
					  h->name, (int)h->vendor);
		if (h->max_banks < 1 || h->max_banks > VMCE_MAX_BANKS)
			return vmce__fail(
				err, -EINVAL,
				"host '%s': field 'max_banks': %u is out of range (1 to %d)",
				h->name, h->max_banks, VMCE_MAX_BANKS);
		if (h->caps & ~VMCE_CAP_ALL)
			return vmce__fail(err, -EINVAL,
					  "host '%s': field 'caps': unknown bits 0x%x", h->name,
					  h->caps & ~VMCE_CAP_ALL);
	}
	memset(out, 0, sizeof(*out));

	/* Vendor: one for the whole pool (a guest's vendor never changes). */
	for (size_t i = 1; i < n; i++)
		if (hosts[i].vendor != hosts[0].vendor)
			return vmce__fail(err, -ENOTSUP,
					  "vendor: host '%s' is %s and host '%s' is %s: no profile "
					  "fits both (a guest's vendor never changes)",
					  hosts[0].name, vname(hosts[0].vendor), hosts[i].name,
					  vname(hosts[i].vendor));
	if (want && want->vendor != hosts[0].vendor)
		return vmce__fail(err, -ENOTSUP,
				  "vendor: the wanted profile is %s but the pool is %s",
				  vname(want->vendor), vname(hosts[0].vendor));
	for (size_t i = 0; i < n; i++)
		if (hosts[i].version_major == 0 && hosts[i].version_minor == 0)
			return vmce__fail(err, -ENOTSUP,
					  "vmce_version: host '%s' runs vmce 0.0, which predates "
					  "migration stream version 1",
					  hosts[i].name);
	memset(&p, 0, sizeof(p));
	p.vendor = hosts[0].vendor;
	nt = note(out, "vendor");
	snprintf(nt->text, sizeof(nt->text), "%s: all %zu host(s) are %s", vname(p.vendor), n,
		 vname(p.vendor));

	/* Banks: the smallest max_banks, and no more than wanted. */
	for (size_t i = 0; i < n; i++)
		if (hosts[i].max_banks < min_banks) {
			min_banks = hosts[i].max_banks;
			limiter = i;
		}
	p.banks = (uint8_t)(want ? want->banks : min_banks);
	nt = note(out, "banks");
	if (p.banks > min_banks) {
		for (size_t i = 0; i < n; i++)
			if (hosts[i].max_banks < p.banks)
				add_host(nt->hosts, sizeof(nt->hosts), hosts[i].name);
		snprintf(nt->text, sizeof(nt->text),
			 "%u, not %u: limited by host '%s' (max_banks %u)", min_banks, p.banks,
			 hosts[limiter].name, min_banks);
		p.banks = (uint8_t)min_banks;
	} else if (!want) {
		snprintf(nt->hosts, sizeof(nt->hosts), "%s", hosts[limiter].name);
		snprintf(nt->text, sizeof(nt->text), "%u: the smallest max_banks, host '%s'",
			 p.banks, hosts[limiter].name);
	} else {
		snprintf(nt->text, sizeof(nt->text), "%u as wanted: every host backs it", p.banks);
	}
	p.report_bank = (uint8_t)(p.banks > 1 ? 1 : 0);
	if (want && want->report_bank < p.banks)
		p.report_bank = want->report_bank;
	else if (want && want->report_bank != p.report_bank) {
		nt = note(out, "report");
		snprintf(nt->text, sizeof(nt->text),
			 "%u, not %u: the wanted reporting bank is beyond %u bank(s)",
			 p.report_bank, want->report_bank, p.banks);
	}
	p.compat_banks = p.banks;
	if (want && want->compat_banks > p.banks) {
		p.compat_banks = want->compat_banks;
	}

	/* Capabilities: those wanted (or all of the vendor's) that every host backs. */
	for (size_t c = 0; c < VMCE_ARRAY_SIZE(caps_tab); c++) {
		uint32_t cap = caps_tab[c].cap;
		bool vendor_ok = p.vendor == VMCE_VENDOR_AMD ? caps_tab[c].amd : caps_tab[c].intel;
		char lacking[96] = "";
		size_t nlack = 0;

		if (!vendor_ok || (want && !(want->caps & cap)))
			continue;
		for (size_t i = 0; i < n; i++)
			if (!(hosts[i].caps & cap)) {
				add_host(lacking, sizeof(lacking), hosts[i].name);
				nlack++;
			}
		nt = note(out, caps_tab[c].name);
		if (!nlack) {
			p.caps |= cap;
			if (nt)
				snprintf(nt->text, sizeof(nt->text), "kept: every host backs it");
		} else if (nt) {
			snprintf(nt->hosts, sizeof(nt->hosts), "%s", lacking);
			snprintf(nt->text, sizeof(nt->text), "dropped: host%s %s cannot back it",
				 nlack > 1 ? "s" : "", lacking);
		}
	}
	/* Backends: the stream is backend-independent; say which the pool mixes. */
	{
		bool user = false, hybrid = false;

		for (size_t i = 0; i < n; i++) {
			user |= hosts[i].backend == VMCE_BACKEND_KVM_USERSPACE;
			hybrid |= hosts[i].backend == VMCE_BACKEND_KVM_HYBRID;
		}
		nt = note(out, "backend");
		if (nt)
			snprintf(nt->text, sizeof(nt->text),
				 "%s%s%s: migration between them is "
				 "backend-independent",
				 user ? "kvm-userspace" : "", user && hybrid ? " and " : "",
				 hybrid ? "kvm-hybrid" : "");
	}
	if (vmce_profile_validate(&p, &e))
		return vmce__fail(err, -EINVAL, "levelled profile: %s", e.msg);
	out->profile = p;
	return 0;
}

int vmce_level_format(const struct vmce_level_result *r, char *buf, size_t len)
{
	char prof[128];
	size_t n;

	vmce_profile_format(&r->profile, prof, sizeof(prof));
	n = (size_t)snprintf(buf, len, "profile: %s\n", prof);
	for (size_t i = 0; i < r->nr_notes; i++)
		n += (size_t)snprintf(buf && n < len ? buf + n : NULL, n < len ? len - n : 0,
				      "%s: %s\n", r->notes[i].field, r->notes[i].text);
	return (int)n;
}
