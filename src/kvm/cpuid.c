// SPDX-License-Identifier: MIT
/*
 * The CPUID helper: the guest's CPUID must announce the MCA the profile presents, and its
 * vendor must match the profile's flavour (Linux picks its severity rules by CPUID vendor).
 */
#include <errno.h>
#include <string.h>

#include "kvm_internal.h"

#define CPUID1_EDX_MCE	   (1u << 7)
#define CPUID1_EDX_MCA	   (1u << 14)
#define AMD_RAS_EBX_SUCCOR (1u << 1)
#define AMD_RAS_EBX_SMCA   (1u << 3)
#define AMD_RAS_LEAF	   0x80000007u

static struct kvm_cpuid_entry2 *find(struct kvm_cpuid2 *c, uint32_t fn)
{
	for (uint32_t i = 0; i < c->nent; i++)
		if (c->entries[i].function == fn && c->entries[i].index == 0)
			return &c->entries[i];
	return NULL;
}

static void vendor_string(const struct kvm_cpuid_entry2 *e, char out[13])
{
	memcpy(out, &e->ebx, 4);
	memcpy(out + 4, &e->edx, 4);
	memcpy(out + 8, &e->ecx, 4);
	out[12] = '\0';
	for (int i = 0; i < 12; i++)
		if (out[i] < 0x20 || out[i] > 0x7e)
			out[i] = '?';
}

int vmce_kvm_cpuid_apply(const struct vmce_profile *p, struct kvm_cpuid2 *cpuid,
			 struct vmce_err *err)
{
	struct kvm_cpuid_entry2 *e0, *e1, *ras;
	char vendor[13];
	bool amd_cpu, intel_cpu;

	if (!p || !cpuid)
		return vmce__fail(err, -EINVAL,
				  "vmce_kvm_cpuid_apply: profile and table are "
				  "required");
	e0 = find(cpuid, 0);
	e1 = find(cpuid, 1);
	if (!e0 || !e1)
		return vmce__fail(err, -ENOENT, "the CPUID table has no leaf %s", e0 ? "1" : "0");
	vendor_string(e0, vendor);
	intel_cpu = !strcmp(vendor, "GenuineIntel");
	amd_cpu = !strcmp(vendor, "AuthenticAMD") || !strcmp(vendor, "HygonGenuine");
	if (p->vendor == VMCE_VENDOR_INTEL && !intel_cpu)
		return vmce__fail(err, -EINVAL,
				  "the profile is Intel-flavoured but the guest's CPUID vendor is "
				  "\"%s\": use an amd profile or an Intel CPUID",
				  vendor);
	if (p->vendor == VMCE_VENDOR_AMD && !amd_cpu)
		return vmce__fail(err, -EINVAL,
				  "the profile is AMD-flavoured but the guest's CPUID vendor is "
				  "\"%s\": use an intel profile or an AMD CPUID",
				  vendor);
	ras = p->vendor == VMCE_VENDOR_AMD ? find(cpuid, AMD_RAS_LEAF) : NULL;
	if (p->vendor == VMCE_VENDOR_AMD && (p->caps & VMCE_CAP_SUCCOR) && !ras)
		return vmce__fail(err, -ENOENT,
				  "the profile has succor but the CPUID table has no "
				  "leaf 0x80000007 to announce it");
	e1->edx |= CPUID1_EDX_MCE | CPUID1_EDX_MCA;
	if (ras) {
		if (p->caps & VMCE_CAP_SUCCOR)
			ras->ebx |= AMD_RAS_EBX_SUCCOR;
		else
			ras->ebx &= ~AMD_RAS_EBX_SUCCOR;
		ras->ebx &= ~AMD_RAS_EBX_SMCA;
	}
	return 0;
}
