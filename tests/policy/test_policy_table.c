// SPDX-License-Identifier: MIT
/*
 * The forwarding policy, scenario by scenario: each host error is planned and injected with
 * vmce_handle_error(), every vCPU then applies its queue with vmce_vcpu_deliver(), and the
 * guest state (vmce_vcpu_get_state) must hold exactly the bank STATUS, ADDR, MISC and
 * MCG_STATUS of the scenario on every vCPU; the decision event, the verdict, the class and the
 * poisoned-page count are checked too.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>

#include "ptest.h"

#define RAW_SRAO(mc) (ST_VAL | ST_UC | ST_EN | ST_S | ST_MISCV | ST_ADDRV | (uint64_t)(mc))
#define RAW_SRAR(mc) (RAW_SRAO(mc) | ST_AR)
#define G_SRAO(mc)   (0xbd00000000000000ull | (uint64_t)(mc))
#define G_SRAR(mc)   (0xbd80000000000000ull | (uint64_t)(mc))
#define MCG5	     (MCG_MCIP | MCG_RIPV)
#define MCG7	     (MCG_MCIP | MCG_RIPV | MCG_EIPV)

#define P_DEFAULT    "intel,banks=2,ser,tes,cmci"
#define P_LMCE	     "intel,banks=2,ser,tes,cmci,lmce"
#define P_CTL	     "intel,banks=2,ser,tes,cmci,ctl"
#define P_NOCMCI     "intel,banks=2,ser,tes"
#define P_AMD	     "amd,banks=2,succor"

/* Setups of the guest state before the error (on the scenario's setup vCPU unless "all"). */
enum {
	S_LMCE_ALL = 1 << 0,	 /* every vCPU: MCG_EXT_CTL.LMCE_EN */
	S_CMCI = 1 << 1,	 /* setup vCPU: CTL2[1].CMCI_EN */
	S_BANK_OFF = 1 << 2,	 /* setup vCPU: MC1_CTL = 0 */
	S_MCIP = 1 << 3,	 /* setup vCPU: MCG_STATUS = MCIP|RIPV (still in a handler) */
	S_PREV_UC = 1 << 4,	 /* setup vCPU: bank 1 holds an unhandled SRAO */
	S_PREV_CE = 1 << 5,	 /* setup vCPU: bank 1 holds a corrected error */
	S_MCGCTL_OFF = 1 << 6,	 /* setup vCPU: MCG_CTL = 0 */
	S_NOT_STARTED = 1 << 7,	 /* setup vCPU not started */
	S_NO_CR4 = 1 << 8,	 /* deliver with CR4.MCE clear */
	S_POISON_FULL = 1 << 9,	 /* poisoned-page set bound 1, already holding another page */
	S_LOG_ONLY = 1 << 10,	 /* fatal policy: log only */
	S_NOT_STARTED2 = 1 << 11 /* vCPU 2 not started (a bystander) */
};

#define PREV_UC_STATUS G_SRAO(0xc0)
#define PREV_UC_ADDR   0x1000ull
#define PREV_CE_STATUS (ST_VAL | ST_EN | 0x9full)

struct expect_vcpu {
	uint64_t status, addr, misc, mcg;
	enum vmce_action act;
};

struct scenario {
	const char *name;
	const char *profile;
	unsigned nr;
	unsigned setup;
	unsigned setup_vcpu;
	struct vmce_host_error e;
	int rc;
	enum vmce_event_kind ev; /* the decision event */
	enum vmce_verdict verdict;
	enum vmce_class cls;
	const char *reason; /* substring of the plan's reason */
	int target;	    /* vCPU that gets the bank record, -1: none */
	bool broadcast, lmce;
	struct expect_vcpu t;  /* target after delivery */
	struct expect_vcpu by; /* each broadcast bystander after delivery */
	int shut;	       /* vCPU that gets a queued shutdown (fatal verdict), -1: none */
	size_t poisoned;
};

#define E_RAW(st, a, m, cpu)                                                                       \
	{                                                                                          \
		.origin = VMCE_ORIGIN_INJECT, .cls = VMCE_CLASS_AUTO, .addr_kind = VMCE_ADDR_GPA,  \
		.addr = (a), .vcpu = (cpu), .status = (st), .misc = (m), .bank = 1,                \
		.mcg_status = MCG5                                                                 \
	}
#define E_SIGBUS(org, a, lsb, cpu)                                                                 \
	{                                                                                          \
		.origin = (org), .cls = VMCE_CLASS_AUTO, .addr_kind = VMCE_ADDR_HVA, .addr = (a),  \
		.addr_lsb = (lsb), .vcpu = (cpu), .bank = -1                                       \
	}

#define NOTHING                                                                                    \
	{                                                                                          \
		0, 0, 0, 0, VMCE_ACTION_NONE                                                       \
	}
#define BYSTANDER                                                                                  \
	{                                                                                          \
		0, 0, 0, MCG5, VMCE_ACTION_MC                                                      \
	}

static const struct scenario scenarios[] = {
	{"srao 0x17a, 2 vCPUs, broadcast",
	 P_DEFAULT,
	 2,
	 0,
	 0,
	 E_RAW(RAW_SRAO(0x17a), 0x12345000, 0x8c, 0),
	 0,
	 VMCE_EVENT_FORWARDED,
	 VMCE_VERDICT_FORWARD,
	 VMCE_CLASS_SRAO,
	 "broadcast to 1",
	 0,
	 true,
	 false,
	 {G_SRAO(0x17a), 0x12345000, 0x8c, MCG5, VMCE_ACTION_MC},
	 BYSTANDER,
	 -1,
	 1},
	{"srao 0xc0 memory scrub",
	 P_DEFAULT,
	 2,
	 0,
	 0,
	 E_RAW(RAW_SRAO(0xc0), 0x2000, 0x8c, 0),
	 0,
	 VMCE_EVENT_FORWARDED,
	 VMCE_VERDICT_FORWARD,
	 VMCE_CLASS_SRAO,
	 "#MC on vcpu 0",
	 0,
	 true,
	 false,
	 {G_SRAO(0xc0), 0x2000, 0x8c, MCG5, VMCE_ACTION_MC},
	 BYSTANDER,
	 -1,
	 1},
	{"srao 0xcf with host-only bits (MSCOD, other info, OVER, PCC-free)",
	 P_DEFAULT,
	 2,
	 0,
	 0,
	 E_RAW(RAW_SRAO(0xcf) | ST_OVER | 0x0010123400000000ull | 0x00000000abcd0000ull, 0x7ffff123,
	       0x8c, 0),
	 0,
	 VMCE_EVENT_FORWARDED,
	 VMCE_VERDICT_FORWARD,
	 VMCE_CLASS_SRAO,
	 "bank 1",
	 0,
	 true,
	 false,
	 {G_SRAO(0xcf), 0x7ffff000, 0x8c, MCG5, VMCE_ACTION_MC},
	 BYSTANDER,
	 -1,
	 1},
	{"srao 0x10c5 (filter bit 12 dropped)",
	 P_DEFAULT,
	 1,
	 0,
	 0,
	 E_RAW(RAW_SRAO(0x10c5), 0x3000, 0x8c, 0),
	 0,
	 VMCE_EVENT_FORWARDED,
	 VMCE_VERDICT_FORWARD,
	 VMCE_CLASS_SRAO,
	 "#MC on vcpu 0",
	 0,
	 false,
	 false,
	 {G_SRAO(0xc5), 0x3000, 0x8c, MCG5, VMCE_ACTION_MC},
	 NOTHING,
	 -1,
	 1},
	{"srao S=0 scrub code (Linux grades AO via CMCI too)",
	 P_DEFAULT,
	 1,
	 0,
	 0,
	 E_RAW(RAW_SRAO(0xc3) & ~ST_S, 0x4000, 0x8c, 0),
	 0,
	 VMCE_EVENT_FORWARDED,
	 VMCE_VERDICT_FORWARD,
	 VMCE_CLASS_SRAO,
	 "srao",
	 0,
	 false,
	 false,
	 {G_SRAO(0xc3), 0x4000, 0x8c, MCG5, VMCE_ACTION_MC},
	 NOTHING,
	 -1,
	 1},
	{"sigbus AO: hva translated, 0xc0",
	 P_DEFAULT,
	 2,
	 0,
	 0,
	 E_SIGBUS(VMCE_ORIGIN_SIGBUS_AO, MAP_A_HVA + 0x5678abc, 12, -1),
	 0,
	 VMCE_EVENT_FORWARDED,
	 VMCE_VERDICT_FORWARD,
	 VMCE_CLASS_SRAO,
	 "broadcast",
	 0,
	 true,
	 false,
	 {G_SRAO(0xc0), 0x5678000, 0x8c, MCG5, VMCE_ACTION_MC},
	 BYSTANDER,
	 -1,
	 1},
	{"sigbus AR: srar data load on the consuming vCPU",
	 P_DEFAULT,
	 2,
	 0,
	 1,
	 E_SIGBUS(VMCE_ORIGIN_SIGBUS_AR, MAP_B_HVA + 0x1234, 12, 1),
	 0,
	 VMCE_EVENT_FORWARDED,
	 VMCE_VERDICT_FORWARD,
	 VMCE_CLASS_SRAR,
	 "#MC on vcpu 1",
	 1,
	 true,
	 false,
	 {G_SRAR(0x134), MAP_B_GPA + 0x1000, 0x8c, MCG7, VMCE_ACTION_MC},
	 BYSTANDER,
	 -1,
	 1},
	{"srar instruction fetch 0x150 from a host record (hpa)",
	 P_DEFAULT,
	 2,
	 0,
	 0,
	 {.origin = VMCE_ORIGIN_HOST_MCE,
	  .addr_kind = VMCE_ADDR_HPA,
	  .addr = MAP_A_HPA + 0x9000,
	  .vcpu = 0,
	  .status = RAW_SRAR(0x150),
	  .misc = 0x8c,
	  .mcg_status = MCG7,
	  .bank = 3},
	 0,
	 VMCE_EVENT_FORWARDED,
	 VMCE_VERDICT_FORWARD,
	 VMCE_CLASS_SRAR,
	 "srar",
	 0,
	 true,
	 false,
	 {G_SRAR(0x150), 0x9000, 0x8c, MCG7, VMCE_ACTION_MC},
	 BYSTANDER,
	 -1,
	 1},
	{"srar 4 vCPUs, LMCE enabled: local",
	 P_LMCE,
	 4,
	 S_LMCE_ALL,
	 2,
	 E_RAW(RAW_SRAR(0x134), 0x6000, 0x8c, 2),
	 0,
	 VMCE_EVENT_FORWARDED,
	 VMCE_VERDICT_FORWARD,
	 VMCE_CLASS_SRAR,
	 "LMCE",
	 2,
	 false,
	 true,
	 {G_SRAR(0x134), 0x6000, 0x8c, MCG7 | MCG_LMCES, VMCE_ACTION_MC},
	 NOTHING,
	 -1,
	 1},
	{"srar 4 vCPUs, no LMCE: broadcast to 3",
	 P_LMCE,
	 4,
	 0,
	 3,
	 E_RAW(RAW_SRAR(0x134), 0x7000, 0x8c, 3),
	 0,
	 VMCE_EVENT_FORWARDED,
	 VMCE_VERDICT_FORWARD,
	 VMCE_CLASS_SRAR,
	 "broadcast to 3",
	 3,
	 true,
	 false,
	 {G_SRAR(0x134), 0x7000, 0x8c, MCG7, VMCE_ACTION_MC},
	 BYSTANDER,
	 -1,
	 1},
	{"srar 64 vCPUs, LMCE: local on 63",
	 P_LMCE,
	 64,
	 S_LMCE_ALL,
	 63,
	 E_RAW(RAW_SRAR(0x134), 0x8000, 0x8c, 63),
	 0,
	 VMCE_EVENT_FORWARDED,
	 VMCE_VERDICT_FORWARD,
	 VMCE_CLASS_SRAR,
	 "LMCE",
	 63,
	 false,
	 true,
	 {G_SRAR(0x134), 0x8000, 0x8c, MCG7 | MCG_LMCES, VMCE_ACTION_MC},
	 NOTHING,
	 -1,
	 1},
	{"srar 64 vCPUs, no LMCE: broadcast to 63",
	 P_DEFAULT,
	 64,
	 0,
	 17,
	 E_RAW(RAW_SRAR(0x150), 0x9000, 0x8c, 17),
	 0,
	 VMCE_EVENT_FORWARDED,
	 VMCE_VERDICT_FORWARD,
	 VMCE_CLASS_SRAR,
	 "broadcast to 63",
	 17,
	 true,
	 false,
	 {G_SRAR(0x150), 0x9000, 0x8c, MCG7, VMCE_ACTION_MC},
	 BYSTANDER,
	 -1,
	 1},
	{"srao 64 vCPUs, LMCE enabled but not local: broadcast",
	 P_LMCE,
	 64,
	 S_LMCE_ALL,
	 0,
	 E_RAW(RAW_SRAO(0x17a), 0xa000, 0x8c, 5),
	 0,
	 VMCE_EVENT_FORWARDED,
	 VMCE_VERDICT_FORWARD,
	 VMCE_CLASS_SRAO,
	 "broadcast to 63",
	 0,
	 true,
	 false,
	 {G_SRAO(0x17a), 0xa000, 0x8c, MCG5, VMCE_ACTION_MC},
	 BYSTANDER,
	 -1,
	 1},
	{"srao 4 vCPUs, local and LMCE: reporting vCPU",
	 P_LMCE,
	 4,
	 S_LMCE_ALL,
	 3,
	 {.origin = VMCE_ORIGIN_INJECT,
	  .addr_kind = VMCE_ADDR_GPA,
	  .addr = 0xb000,
	  .vcpu = 3,
	  .local = true,
	  .status = RAW_SRAO(0xc0),
	  .misc = 0x8c,
	  .mcg_status = MCG5 | MCG_LMCES},
	 0,
	 VMCE_EVENT_FORWARDED,
	 VMCE_VERDICT_FORWARD,
	 VMCE_CLASS_SRAO,
	 "local #MC",
	 3,
	 false,
	 true,
	 {G_SRAO(0xc0), 0xb000, 0x8c, MCG5 | MCG_LMCES, VMCE_ACTION_MC},
	 NOTHING,
	 -1,
	 1},
	{"srao 4 vCPUs, local but LMCE off: vCPU 0 and broadcast",
	 P_LMCE,
	 4,
	 0,
	 0,
	 {.origin = VMCE_ORIGIN_INJECT,
	  .addr_kind = VMCE_ADDR_GPA,
	  .addr = 0xb000,
	  .vcpu = 3,
	  .local = true,
	  .status = RAW_SRAO(0xc0),
	  .misc = 0x8c,
	  .mcg_status = MCG5},
	 0,
	 VMCE_EVENT_FORWARDED,
	 VMCE_VERDICT_FORWARD,
	 VMCE_CLASS_SRAO,
	 "broadcast to 3",
	 0,
	 true,
	 false,
	 {G_SRAO(0xc0), 0xb000, 0x8c, MCG5, VMCE_ACTION_MC},
	 BYSTANDER,
	 -1,
	 1},
	{"srar 1 vCPU",
	 P_DEFAULT,
	 1,
	 0,
	 0,
	 E_RAW(RAW_SRAR(0x134), 0xc000, 0x8c, 0),
	 0,
	 VMCE_EVENT_FORWARDED,
	 VMCE_VERDICT_FORWARD,
	 VMCE_CLASS_SRAR,
	 "#MC on vcpu 0",
	 0,
	 false,
	 false,
	 {G_SRAR(0x134), 0xc000, 0x8c, MCG7, VMCE_ACTION_MC},
	 NOTHING,
	 -1,
	 1},
	{"ucna with CMCI enabled",
	 P_DEFAULT,
	 2,
	 S_CMCI,
	 1,
	 E_RAW(ST_VAL | ST_UC | ST_EN | ST_ADDRV | ST_MISCV | 0x9f, 0xd000, 0x8c, 1),
	 0,
	 VMCE_EVENT_FORWARDED,
	 VMCE_VERDICT_FORWARD,
	 VMCE_CLASS_UCNA,
	 "CMCI on vcpu 1",
	 1,
	 false,
	 false,
	 {0xbc0000000000009full, 0xd000, 0x8c, 0, VMCE_ACTION_CMCI},
	 NOTHING,
	 -1,
	 1},
	{"ucna with CMCI disabled in CTL2: dropped", P_DEFAULT, 2, 0, 0,
	 E_RAW(ST_VAL | ST_UC | ST_EN | ST_ADDRV | ST_MISCV | 0x9f, 0xd000, 0x8c, 0), 0,
	 VMCE_EVENT_DROPPED, VMCE_VERDICT_DROP, VMCE_CLASS_UCNA, "CMCI disabled", -1, false, false,
	 NOTHING, NOTHING, -1, 0},
	{"ucna on a profile without cmci: dropped", P_NOCMCI, 2, 0, 0,
	 E_RAW(ST_VAL | ST_UC | ST_EN | 0x9f, 0, 0, 0), 0, VMCE_EVENT_DROPPED, VMCE_VERDICT_DROP,
	 VMCE_CLASS_UCNA, "no CMCI", -1, false, false, NOTHING, NOTHING, -1, 0},
	{"corrected error: dropped and counted", P_DEFAULT, 2, S_CMCI, 0,
	 E_RAW(ST_VAL | ST_EN | ST_ADDRV | ST_MISCV | 0x9f, 0xe000, 0x8c, 0), 0, VMCE_EVENT_DROPPED,
	 VMCE_VERDICT_DROP, VMCE_CLASS_CE, "corrected error", -1, false, false, NOTHING, NOTHING,
	 -1, 0},
	{"fatal: PCC", P_DEFAULT, 2, 0, 0, E_RAW(RAW_SRAR(0x134) | ST_PCC, 0xf000, 0x8c, 1), 0,
	 VMCE_EVENT_FATAL, VMCE_VERDICT_FATAL, VMCE_CLASS_FATAL, "processor context corrupt", -1,
	 false, false, NOTHING, NOTHING, 1, 0},
	{"fatal: srar without an address",
	 P_DEFAULT,
	 2,
	 0,
	 0,
	 {.origin = VMCE_ORIGIN_SIGBUS_AR, .addr_kind = VMCE_ADDR_NONE, .vcpu = 1},
	 0,
	 VMCE_EVENT_FATAL,
	 VMCE_VERDICT_FATAL,
	 VMCE_CLASS_SRAR,
	 "no guest address",
	 -1,
	 false,
	 false,
	 NOTHING,
	 NOTHING,
	 1,
	 0},
	{"fatal: srar without a consuming vCPU (shutdown on vCPU 0)", P_DEFAULT, 2, 0, 0,
	 E_SIGBUS(VMCE_ORIGIN_SIGBUS_AR, MAP_A_HVA + 0x10000, 12, -1), 0, VMCE_EVENT_FATAL,
	 VMCE_VERDICT_FATAL, VMCE_CLASS_SRAR, "no consuming vCPU", -1, false, false, NOTHING,
	 NOTHING, 0, 0},
	{"fatal: srar without MISCV (Linux: unknown address)", P_DEFAULT, 2, 0, 0,
	 E_RAW(RAW_SRAR(0x134) & ~ST_MISCV, 0x11000, 0, 0), 0, VMCE_EVENT_FATAL, VMCE_VERDICT_FATAL,
	 VMCE_CLASS_SRAR, "without ADDRV and MISCV", -1, false, false, NOTHING, NOTHING, 0, 0},
	{"fatal: srar with OVER", P_DEFAULT, 2, 0, 0,
	 E_RAW(RAW_SRAR(0x134) | ST_OVER, 0x11000, 0x8c, 0), 0, VMCE_EVENT_FATAL,
	 VMCE_VERDICT_FATAL, VMCE_CLASS_SRAR, "lost events", -1, false, false, NOTHING, NOTHING, 0,
	 0},
	{"fatal: UC with AR but not S", P_DEFAULT, 2, 0, 0,
	 E_RAW((RAW_SRAR(0x134) & ~ST_S), 0x11000, 0x8c, 0), 0, VMCE_EVENT_FATAL,
	 VMCE_VERDICT_FATAL, VMCE_CLASS_FATAL, "illegal combination", -1, false, false, NOTHING,
	 NOTHING, 0, 0},
	{"fatal with the log-only policy: nothing queued", P_DEFAULT, 2, S_LOG_ONLY, 0,
	 E_RAW(RAW_SRAO(0xc0) | ST_PCC, 0x12000, 0x8c, 0), 0, VMCE_EVENT_FATAL, VMCE_VERDICT_FATAL,
	 VMCE_CLASS_FATAL, "PCC", -1, false, false, NOTHING, NOTHING, -1, 0},
	{"gpa outside guest memory: dropped", P_DEFAULT, 2, 0, 0,
	 E_RAW(RAW_SRAR(0x134), 0x200000000ull, 0x8c, 0), 0, VMCE_EVENT_DROPPED, VMCE_VERDICT_DROP,
	 VMCE_CLASS_SRAR, "not guest memory", -1, false, false, NOTHING, NOTHING, -1, 0},
	{"hva outside guest memory: dropped", P_DEFAULT, 2, 0, 0,
	 E_SIGBUS(VMCE_ORIGIN_SIGBUS_AR, 0x7f0080000000ull, 12, 1), 0, VMCE_EVENT_DROPPED,
	 VMCE_VERDICT_DROP, VMCE_CLASS_SRAR, "hva 0x7f0080000000 is not guest memory", -1, false,
	 false, NOTHING, NOTHING, -1, 0},
	{"hpa of a range without hpa backing: dropped",
	 P_DEFAULT,
	 2,
	 0,
	 0,
	 {.origin = VMCE_ORIGIN_HOST_MCE,
	  .addr_kind = VMCE_ADDR_HPA,
	  .addr = 0x50001000,
	  .vcpu = 0,
	  .status = RAW_SRAO(0xc0),
	  .misc = 0x8c,
	  .mcg_status = MCG5},
	 0,
	 VMCE_EVENT_DROPPED,
	 VMCE_VERDICT_DROP,
	 VMCE_CLASS_SRAO,
	 "not guest memory",
	 -1,
	 false,
	 false,
	 NOTHING,
	 NOTHING,
	 -1,
	 0},
	{"nested srao: MCIP already set on the target -> held, nothing delivered",
	 P_DEFAULT,
	 2,
	 S_MCIP,
	 0,
	 E_RAW(RAW_SRAO(0x17a), 0x13000, 0x8c, 0),
	 0,
	 VMCE_EVENT_HELD,
	 VMCE_VERDICT_FORWARD,
	 VMCE_CLASS_SRAO,
	 "MCIP is set on vcpu 0",
	 0,
	 true,
	 false,
	 {0, 0, 0, MCG5, VMCE_ACTION_NONE},
	 NOTHING,
	 -1,
	 1},
	{"srao while a bystander has MCIP set -> held, nothing delivered", P_DEFAULT, 4, S_MCIP, 2,
	 E_RAW(RAW_SRAO(0x17a), 0x13000, 0x8c, 0), 0, VMCE_EVENT_HELD, VMCE_VERDICT_FORWARD,
	 VMCE_CLASS_SRAO, "broadcast to 3", 0, true, false, NOTHING, NOTHING, -1, 1},
	{"nested srar: MCIP set on the target -> shutdown (poison consumed in the handler)",
	 P_DEFAULT,
	 2,
	 S_MCIP,
	 0,
	 E_RAW(RAW_SRAR(0x134), 0x13000, 0x8c, 0),
	 0,
	 VMCE_EVENT_FORWARDED,
	 VMCE_VERDICT_FORWARD,
	 VMCE_CLASS_SRAR,
	 "MCIP is set on vcpu 0",
	 0,
	 true,
	 false,
	 {0, 0, 0, MCG5, VMCE_ACTION_SHUTDOWN},
	 BYSTANDER,
	 -1,
	 1},
	{"srar on an idle target while a bystander has MCIP set -> held", P_DEFAULT, 2, S_MCIP, 1,
	 E_RAW(RAW_SRAR(0x134), 0x13000, 0x8c, 0), 0, VMCE_EVENT_HELD, VMCE_VERDICT_FORWARD,
	 VMCE_CLASS_SRAR, "broadcast to 1", 0, true, false, NOTHING, NOTHING, -1, 1},
	{"CR4.MCE clear -> shutdown",
	 P_DEFAULT,
	 1,
	 S_NO_CR4,
	 0,
	 E_RAW(RAW_SRAO(0x17a), 0x13000, 0x8c, 0),
	 0,
	 VMCE_EVENT_FORWARDED,
	 VMCE_VERDICT_FORWARD,
	 VMCE_CLASS_SRAO,
	 "srao",
	 0,
	 false,
	 false,
	 {0, 0, 0, 0, VMCE_ACTION_SHUTDOWN},
	 NOTHING,
	 -1,
	 1},
	{"bank disabled (MC1_CTL=0): loaded, masked, no broadcast",
	 P_DEFAULT,
	 2,
	 S_BANK_OFF,
	 0,
	 E_RAW(RAW_SRAO(0x17a), 0x14000, 0x8c, 0),
	 0,
	 VMCE_EVENT_FORWARDED,
	 VMCE_VERDICT_FORWARD,
	 VMCE_CLASS_SRAO,
	 "disabled",
	 0,
	 false,
	 false,
	 {G_SRAO(0x17a), 0x14000, 0x8c, 0, VMCE_ACTION_LOADED},
	 NOTHING,
	 -1,
	 1},
	{"MCG_CTL=0 (ctl profile): loaded, masked",
	 P_CTL,
	 2,
	 S_MCGCTL_OFF,
	 1,
	 E_RAW(RAW_SRAR(0x134), 0x15000, 0x8c, 1),
	 0,
	 VMCE_EVENT_FORWARDED,
	 VMCE_VERDICT_FORWARD,
	 VMCE_CLASS_SRAR,
	 "disabled",
	 1,
	 false,
	 false,
	 {G_SRAR(0x134), 0x15000, 0x8c, 0, VMCE_ACTION_LOADED},
	 NOTHING,
	 -1,
	 1},
	{"OVER: bank still holds an uncorrected error",
	 P_DEFAULT,
	 2,
	 S_PREV_UC,
	 0,
	 E_RAW(RAW_SRAO(0x17a), 0x16000, 0x8c, 0),
	 0,
	 VMCE_EVENT_FORWARDED,
	 VMCE_VERDICT_FORWARD,
	 VMCE_CLASS_SRAO,
	 "srao",
	 0,
	 true,
	 false,
	 {PREV_UC_STATUS | ST_OVER, PREV_UC_ADDR, 0x8c, MCG5, VMCE_ACTION_MC},
	 BYSTANDER,
	 -1,
	 1},
	{"OVER: uncorrected replaces a corrected error",
	 P_DEFAULT,
	 2,
	 S_PREV_CE,
	 1,
	 E_RAW(RAW_SRAR(0x134), 0x17000, 0x8c, 1),
	 0,
	 VMCE_EVENT_FORWARDED,
	 VMCE_VERDICT_FORWARD,
	 VMCE_CLASS_SRAR,
	 "srar",
	 1,
	 true,
	 false,
	 {G_SRAR(0x134) | ST_OVER, 0x17000, 0x8c, MCG7, VMCE_ACTION_MC},
	 BYSTANDER,
	 -1,
	 1},
	{"amd: srao as a Deferred error for the poller",
	 P_AMD,
	 2,
	 0,
	 0,
	 E_SIGBUS(VMCE_ORIGIN_SIGBUS_AO, MAP_A_HVA + 0x18000, 12, -1),
	 0,
	 VMCE_EVENT_FORWARDED,
	 VMCE_VERDICT_FORWARD,
	 VMCE_CLASS_SRAO,
	 "Deferred",
	 0,
	 false,
	 false,
	 {0x94001000000000c0ull, 0x18000, 0, 0, VMCE_ACTION_LOADED},
	 NOTHING,
	 -1,
	 1},
	{"amd: srar as UC (no S/AR bits), no broadcast",
	 P_AMD,
	 2,
	 0,
	 1,
	 E_SIGBUS(VMCE_ORIGIN_SIGBUS_AR, MAP_A_HVA + 0x19000, 12, 1),
	 0,
	 VMCE_EVENT_FORWARDED,
	 VMCE_VERDICT_FORWARD,
	 VMCE_CLASS_SRAR,
	 "amd flavour",
	 1,
	 false,
	 false,
	 {0xb400080000000134ull, 0x19000, 0, MCG7, VMCE_ACTION_MC},
	 NOTHING,
	 -1,
	 1},
	{"amd: ucna dropped (no CMCI)", P_AMD, 2, 0, 0,
	 E_RAW(ST_VAL | ST_UC | ST_EN | 0x9f, 0, 0, 0), 0, VMCE_EVENT_DROPPED, VMCE_VERDICT_DROP,
	 VMCE_CLASS_UCNA, "amd flavour", -1, false, false, NOTHING, NOTHING, -1, 0},
	{"sigbus AR on a 2 MiB page: the 4 KiB page inside, LSB 12",
	 P_DEFAULT,
	 2,
	 0,
	 0,
	 E_SIGBUS(VMCE_ORIGIN_SIGBUS_AR, MAP_A_HVA + 0x20345678, 21, 0),
	 0,
	 VMCE_EVENT_FORWARDED,
	 VMCE_VERDICT_FORWARD,
	 VMCE_CLASS_SRAR,
	 "srar",
	 0,
	 true,
	 false,
	 {G_SRAR(0x134), 0x20345000, 0x8c, MCG7, VMCE_ACTION_MC},
	 BYSTANDER,
	 -1,
	 1},
	{"sigbus AO with cache-line granularity: LSB 6",
	 P_DEFAULT,
	 1,
	 0,
	 0,
	 E_SIGBUS(VMCE_ORIGIN_SIGBUS_AO, MAP_A_HVA + 0x21345678, 6, -1),
	 0,
	 VMCE_EVENT_FORWARDED,
	 VMCE_VERDICT_FORWARD,
	 VMCE_CLASS_SRAO,
	 "srao",
	 0,
	 false,
	 false,
	 {G_SRAO(0xc0), 0x21345640, 0x86, MCG5, VMCE_ACTION_MC},
	 NOTHING,
	 -1,
	 1},
	{"raw VAL clear: dropped", P_DEFAULT, 2, 0, 0,
	 E_RAW(RAW_SRAO(0xc0) & ~ST_VAL, 0x1000, 0x8c, 0), 0, VMCE_EVENT_DROPPED, VMCE_VERDICT_DROP,
	 VMCE_CLASS_AUTO, "VAL clear", -1, false, false, NOTHING, NOTHING, -1, 0},
	{"action optional with an unknown MCACOD: dropped", P_DEFAULT, 2, 0, 0,
	 E_RAW(RAW_SRAO(0x135), 0x1000, 0x8c, 0), 0, VMCE_EVENT_DROPPED, VMCE_VERDICT_DROP,
	 VMCE_CLASS_SRAO, "MCACOD", -1, false, false, NOTHING, NOTHING, -1, 0},
	{"srao with MISC in a non-physical address mode: dropped", P_DEFAULT, 2, 0, 0,
	 E_RAW(RAW_SRAO(0xc0), 0x1000, 0x4c, 0), 0, VMCE_EVENT_DROPPED, VMCE_VERDICT_DROP,
	 VMCE_CLASS_SRAO, "non-physical", -1, false, false, NOTHING, NOTHING, -1, 0},
	{"srao with ADDRV clear in the raw STATUS: dropped", P_DEFAULT, 2, 0, 0,
	 E_RAW(RAW_SRAO(0xc0) & ~ST_ADDRV, 0x1000, 0x8c, 0), 0, VMCE_EVENT_DROPPED,
	 VMCE_VERDICT_DROP, VMCE_CLASS_SRAO, "ADDRV is clear", -1, false, false, NOTHING, NOTHING,
	 -1, 0},
	{"no_broadcast honoured",
	 P_DEFAULT,
	 4,
	 0,
	 0,
	 {.origin = VMCE_ORIGIN_INJECT,
	  .addr_kind = VMCE_ADDR_GPA,
	  .addr = 0x22000,
	  .vcpu = 0,
	  .no_broadcast = true,
	  .status = RAW_SRAO(0x17a),
	  .misc = 0x8c,
	  .mcg_status = MCG5},
	 0,
	 VMCE_EVENT_FORWARDED,
	 VMCE_VERDICT_FORWARD,
	 VMCE_CLASS_SRAO,
	 "not broadcast",
	 0,
	 false,
	 false,
	 {G_SRAO(0x17a), 0x22000, 0x8c, MCG5, VMCE_ACTION_MC},
	 NOTHING,
	 -1,
	 1},
	{"target vCPU not started: refused", P_DEFAULT, 2, S_NOT_STARTED, 1,
	 E_RAW(RAW_SRAR(0x134), 0x23000, 0x8c, 1), -ESRCH, VMCE_EVENT_REFUSED, VMCE_VERDICT_FORWARD,
	 VMCE_CLASS_SRAR, "srar", -1, true, false, NOTHING, NOTHING, -1, 0},
	{"bystander not started: skipped",
	 P_DEFAULT,
	 4,
	 S_NOT_STARTED2,
	 0,
	 E_RAW(RAW_SRAO(0xc0), 0x24000, 0x8c, 0),
	 0,
	 VMCE_EVENT_FORWARDED,
	 VMCE_VERDICT_FORWARD,
	 VMCE_CLASS_SRAO,
	 "broadcast to 3",
	 0,
	 true,
	 false,
	 {G_SRAO(0xc0), 0x24000, 0x8c, MCG5, VMCE_ACTION_MC},
	 BYSTANDER,
	 -1,
	 1},
	{"poisoned-page set full: refused, nothing queued", P_DEFAULT, 2, S_POISON_FULL, 0,
	 E_RAW(RAW_SRAO(0xc0), 0x25000, 0x8c, 0), -ENOSPC, VMCE_EVENT_REFUSED, VMCE_VERDICT_FORWARD,
	 VMCE_CLASS_SRAO, "srao", -1, true, false, NOTHING, NOTHING, -1, 1},
};

static void check_vcpu(const struct scenario *sc, unsigned i, const struct vmce_vcpu_state *st,
		       const struct expect_vcpu *x, enum vmce_action act)
{
	const struct vmce_bank_state *b = &st->bank[1];

	if (b->status != x->status || b->addr != x->addr || b->misc != x->misc ||
	    st->mcg_status != x->mcg || act != x->act)
		fail_msg("%s: vcpu %u: got status 0x%016" PRIx64 " addr 0x%" PRIx64
			 " misc 0x%" PRIx64 " mcg 0x%" PRIx64
			 " action %d; want status 0x%016" PRIx64 " addr 0x%" PRIx64
			 " misc 0x%" PRIx64 " mcg 0x%" PRIx64 " action %d",
			 sc->name, i, b->status, b->addr, b->misc, st->mcg_status, (int)act,
			 x->status, x->addr, x->misc, x->mcg, (int)x->act);
}

static void setup_state(struct vmce_vm *vm, const struct scenario *sc)
{
	struct vmce_vcpu *v = vmce_vm_vcpu(vm, sc->setup_vcpu);
	struct vmce_err err = {{0}};

	assert_non_null(v);
	if (sc->setup & S_LMCE_ALL)
		for (unsigned i = 0; i < sc->nr; i++)
			assert_int_equal(vmce_wrmsr(vmce_vm_vcpu(vm, i), VMCE_MSR_MCG_EXT_CTL,
						    VMCE_MCG_EXT_CTL_LMCE_EN),
					 VMCE_MSR_OK);
	if (sc->setup & S_CMCI)
		assert_int_equal(vmce_wrmsr(v, VMCE_MSR_MCi_CTL2(1), VMCE_MCI_CTL2_CMCI_EN | 1),
				 VMCE_MSR_OK);
	if (sc->setup & S_BANK_OFF)
		assert_int_equal(vmce_wrmsr(v, VMCE_MSR_MCi_CTL(1), 0), VMCE_MSR_OK);
	if (sc->setup & S_MCGCTL_OFF)
		assert_int_equal(vmce_wrmsr(v, VMCE_MSR_MCG_CTL, 0), VMCE_MSR_OK);
	if (sc->setup & S_MCIP)
		assert_int_equal(vmce_wrmsr(v, VMCE_MSR_MCG_STATUS, MCG5), VMCE_MSR_OK);
	if (sc->setup & S_PREV_UC) {
		assert_int_equal(vmce_host_wrmsr(v, VMCE_MSR_MCi_STATUS(1), PREV_UC_STATUS),
				 VMCE_MSR_OK);
		assert_int_equal(vmce_host_wrmsr(v, VMCE_MSR_MCi_ADDR(1), PREV_UC_ADDR),
				 VMCE_MSR_OK);
		assert_int_equal(vmce_host_wrmsr(v, VMCE_MSR_MCi_MISC(1), 0x8c), VMCE_MSR_OK);
	}
	if (sc->setup & S_PREV_CE)
		assert_int_equal(vmce_host_wrmsr(v, VMCE_MSR_MCi_STATUS(1), PREV_CE_STATUS),
				 VMCE_MSR_OK);
	if (sc->setup & S_NOT_STARTED)
		vmce_vcpu_set_started(v, false);
	if (sc->setup & S_NOT_STARTED2)
		vmce_vcpu_set_started(vmce_vm_vcpu(vm, 2), false);
	if (sc->setup & S_POISON_FULL) {
		assert_int_equal(vmce_poison_add(vm, 0x7000000, &err), 0);
		assert_int_equal(vmce_poison_add(vm, 0x7001000, &err), -ENOSPC);
		assert_non_null(strstr(err.msg, "full"));
	}
}

/* vmce_plan_decide() makes the same plan as vmce_plan_error(), without the text, and
 * vmce_plan_reason() writes that text (the VM's state is not changed by either). */
static void check_decide(struct vmce_vm *vm, const struct scenario *sc)
{
	struct vmce_plan eager, lazy, copy;
	struct vmce_err err = {{0}};
	char text[sizeof(eager.reason)], ja[16384], jb[16384];

	assert_int_equal(vmce_plan_error(vm, &sc->e, &eager, &err), 0);
	assert_int_equal(vmce_plan_decide(vm, &sc->e, &lazy, &err), 0);
	assert_string_equal(lazy.reason, "");
	assert_int_equal(lazy.verdict, eager.verdict);
	assert_int_equal(lazy.cls, eager.cls);
	assert_int_equal(lazy.has_gpa, eager.has_gpa);
	assert_int_equal(lazy.gpa, eager.gpa);
	assert_int_equal(lazy.nr_vcpus, eager.nr_vcpus);
	assert_int_equal(lazy.target, eager.target);
	assert_int_equal(lazy.broadcast, eager.broadcast);
	assert_int_equal(lazy.lmce, eager.lmce);
	assert_memory_equal(&lazy.record, &eager.record, sizeof(lazy.record));
	assert_memory_equal(&lazy.bystander, &eager.bystander, sizeof(lazy.bystander));
	copy = lazy;
	assert_int_equal(vmce_plan_reason(&copy, text, sizeof(text)), (int)strlen(eager.reason));
	if (strcmp(text, eager.reason))
		fail_msg("%s: vmce_plan_reason '%s', vmce_plan_error '%s'", sc->name, text,
			 eager.reason);
	assert_int_equal(vmce_plan_reason(&eager, NULL, 0), (int)strlen(eager.reason));
	vmce_plan_format_json(&eager, ja, sizeof(ja));
	vmce_plan_format_json(&lazy, jb, sizeof(jb));
	assert_string_equal(ja, jb);
}

static void run_scenario(void **state)
{
	const struct scenario *sc = *state;
	struct vmce_vm *vm;
	struct vmce_plan plan;
	struct vmce_err err = {{0}};
	struct vmce_event ev[4];
	struct vmce_counters cnt;
	char json[16384];
	uint64_t seq0;
	size_t n, poison0;
	int rc, jl;

	vm = ptest_vm(sc->profile, sc->nr, (sc->setup & S_POISON_FULL) ? 1 : 0,
		      (sc->setup & S_LOG_ONLY) ? VMCE_FATAL_LOG_ONLY : VMCE_FATAL_SHUTDOWN);
	setup_state(vm, sc);
	seq0 = vmce_events_last_seq(vm);
	poison0 = vmce_poison_count(vm);
	check_decide(vm, sc);
	assert_int_equal(vmce_events_last_seq(vm), seq0);

	rc = vmce_handle_error(vm, &sc->e, &plan, &err);
	if (rc != sc->rc)
		fail_msg("%s: rc %d (%s), want %d", sc->name, rc, err.msg, sc->rc);
	if (plan.verdict != sc->verdict || plan.cls != sc->cls)
		fail_msg("%s: verdict %s class %s, want %s %s (%s)", sc->name,
			 vmce_verdict_name(plan.verdict), vmce_class_name(plan.cls),
			 vmce_verdict_name(sc->verdict), vmce_class_name(sc->cls), plan.reason);
	if (!strstr(plan.reason, sc->reason))
		fail_msg("%s: reason '%s' lacks '%s'", sc->name, plan.reason, sc->reason);
	if (sc->verdict == VMCE_VERDICT_FORWARD &&
	    (plan.broadcast != sc->broadcast || plan.lmce != sc->lmce))
		fail_msg("%s: broadcast %d lmce %d, want %d %d", sc->name, plan.broadcast,
			 plan.lmce, sc->broadcast, sc->lmce);
	if (sc->rc)
		assert_non_null(strstr(err.msg, "refused"));

	/* The decision is the first event logged. */
	n = vmce_events_read(vm, seq0, ev, 4);
	assert_true(n >= 1);
	assert_int_equal(ev[0].seq, seq0 + 1);
	if (ev[0].kind != sc->ev)
		fail_msg("%s: first event %s, want %s", sc->name, vmce_event_kind_name(ev[0].kind),
			 vmce_event_kind_name(sc->ev));
	assert_int_equal(ev[0].cls, plan.cls);
	vmce_get_counters(vm, &cnt);
	assert_int_equal(cnt.by_class[plan.cls], 1);

	jl = vmce_plan_format_json(&plan, json, sizeof(json));
	assert_true(jl > 0 && (size_t)jl < sizeof(json));
	assert_int_equal(strlen(json), (size_t)jl);
	assert_true(strncmp(json, "{\"verdict\":\"", 12) == 0);
	assert_non_null(strstr(json, vmce_verdict_name(plan.verdict)));

	/* Every vCPU applies its queue. */
	for (unsigned i = 0; i < sc->nr; i++) {
		struct vmce_vcpu *v = vmce_vm_vcpu(vm, i);
		struct vmce_vcpu_state st;
		struct vmce_delivery d;
		struct vmce_vcpu_record r;
		bool cr4 = !(sc->setup & S_NO_CR4);
		bool started = vmce_vcpu_started(v);
		const struct expect_vcpu nothing = NOTHING;
		struct expect_vcpu x = nothing;

		vmce_vcpu_deliver(v, cr4, &d);
		vmce_vcpu_get_state(v, &st);
		if (sc->target >= 0 && i == (unsigned)sc->target) {
			x = sc->t;
			assert_true(vmce_plan_vcpu(&plan, i, &r));
			assert_int_equal(r.bank, 1);
		} else if (sc->broadcast && sc->target >= 0 && started) {
			x = sc->by;
			assert_true(vmce_plan_vcpu(&plan, i, &r));
			assert_int_equal(r.bank, -1);
		} else if (sc->shut >= 0 && i == (unsigned)sc->shut) {
			x.act = VMCE_ACTION_SHUTDOWN;
		}
		if ((sc->setup & S_MCIP) && i == sc->setup_vcpu)
			x.mcg = MCG5;
		if ((sc->setup & (S_PREV_UC | S_PREV_CE)) && i == sc->setup_vcpu && x.status == 0) {
			x.status = (sc->setup & S_PREV_UC) ? PREV_UC_STATUS : PREV_CE_STATUS;
			x.addr = (sc->setup & S_PREV_UC) ? PREV_UC_ADDR : 0;
			x.misc = (sc->setup & S_PREV_UC) ? 0x8c : 0;
		}
		check_vcpu(sc, i, &st, &x, d.action);
		if (d.action != VMCE_ACTION_NONE)
			assert_true(d.event_seq > seq0);
		/* Nothing else is queued. */
		assert_int_equal(vmce_vcpu_deliver(v, cr4, &d), 0);
		assert_int_equal(d.action, VMCE_ACTION_NONE);
	}
	if (vmce_poison_count(vm) - poison0 != (sc->rc ? 0 : sc->poisoned) ||
	    (plan.has_gpa && sc->poisoned && !sc->rc && !vmce_poison_contains(vm, plan.gpa)))
		fail_msg("%s: %zu page(s) poisoned, want %zu", sc->name,
			 vmce_poison_count(vm) - poison0, sc->rc ? 0 : sc->poisoned);
	vmce_vm_destroy(vm);
}

/* The JSON of a plan, byte for byte (the format other tools parse). */
static void test_plan_json_exact(void **state)
{
	struct vmce_vm *vm = ptest_vm(NULL, 2, 0, VMCE_FATAL_SHUTDOWN);
	struct vmce_host_error e;
	struct vmce_plan plan;
	struct vmce_err err;
	char buf[1024], small[16];
	int n;

	(void)state;
	vmce_host_error_init(&e);
	e.status = RAW_SRAO(0x17a);
	e.misc = 0x8c;
	e.addr_kind = VMCE_ADDR_GPA;
	e.addr = 0x12345000;
	e.mcg_status = MCG5;
	assert_int_equal(vmce_plan_error(vm, &e, &plan, &err), 0);
	n = vmce_plan_format_json(&plan, buf, sizeof(buf));
	assert_string_equal(
		buf,
		"{\"verdict\":\"forward\",\"class\":\"srao\",\"reason\":\"srao: #MC on vcpu 0, "
		"bank 1, broadcast to 1 other vCPU(s)\",\"gpa\":\"0x12345000\",\"nr_vcpus\":2,"
		"\"target\":0,\"broadcast\":true,\"lmce\":false,\"vcpus\":[{\"cpu\":0,"
		"\"signal\":\"mc\",\"mcg_status\":\"0x5\",\"bank\":1,\"status\":"
		"\"0xbd0000000000017a\",\"addr\":\"0x12345000\",\"misc\":\"0x8c\"},{\"cpu\":1,"
		"\"signal\":\"mc\",\"mcg_status\":\"0x5\"}]}");
	assert_int_equal(n, (int)strlen(buf));
	/* Truncation: terminated, same length reported. */
	assert_int_equal(vmce_plan_format_json(&plan, small, sizeof(small)), n);
	assert_int_equal(strlen(small), sizeof(small) - 1);
	assert_int_equal(vmce_plan_format_json(&plan, NULL, 0), n);

	/* A dropped plan: gpa null, no vCPUs; the reason is escaped. */
	e.addr = 0x300000000ull;
	assert_int_equal(vmce_plan_error(vm, &e, &plan, &err), 0);
	snprintf(plan.reason, sizeof(plan.reason), "a \"quoted\" \\ reason\n\x01");
	plan.has_gpa = false;
	vmce_plan_format_json(&plan, buf, sizeof(buf));
	assert_string_equal(buf, "{\"verdict\":\"drop\",\"class\":\"srao\",\"reason\":\"a "
				 "\\\"quoted\\\" \\\\ reason\\u000a\\u0001\",\"gpa\":null,"
				 "\"nr_vcpus\":2,\"target\":0,\"broadcast\":false,\"lmce\":false,"
				 "\"vcpus\":[]}");
	vmce_vm_destroy(vm);
}

/* A plan from vmce_plan_decide(): vmce_inject() writes its reason into the events and the
 * records; vmce_plan_reason() truncates like snprintf. */
static void test_plan_decide_inject(void **state)
{
	struct vmce_vm *vm = ptest_vm(NULL, 2, 0, VMCE_FATAL_SHUTDOWN);
	const char *want = "srao: #MC on vcpu 0, bank 1, broadcast to 1 other vCPU(s)";
	struct vmce_host_error e;
	struct vmce_plan plan;
	struct vmce_err err;
	struct vmce_event ev;
	struct vmce_delivery d;
	char small[8];

	(void)state;
	vmce_host_error_init(&e);
	e.status = RAW_SRAO(0x17a);
	e.misc = 0x8c;
	e.addr_kind = VMCE_ADDR_GPA;
	e.addr = 0x12345000;
	assert_int_equal(vmce_plan_decide(vm, &e, &plan, &err), 0);
	assert_string_equal(plan.reason, "");
	assert_int_equal(vmce_plan_reason(&plan, small, sizeof(small)), (int)strlen(want));
	assert_string_equal(small, "srao: #");
	assert_int_equal(vmce_plan_reason(&plan, NULL, 0), (int)strlen(want));
	assert_int_equal(vmce_plan_reason(NULL, small, sizeof(small)), -EINVAL);
	assert_int_equal(vmce_plan_reason(&plan, NULL, 4), -EINVAL);

	assert_int_equal(vmce_inject(vm, &plan, &err), 0);
	assert_int_equal(vmce_events_read(vm, 0, &ev, 1), 1);
	assert_int_equal(ev.kind, VMCE_EVENT_FORWARDED);
	assert_string_equal(ev.reason, want);
	vmce_vm_destroy(vm);

	/* A fatal one: the shutdown record carries the text too. */
	vm = ptest_vm(NULL, 2, 0, VMCE_FATAL_SHUTDOWN);
	want = "srar: no consuming vCPU is known: the guest cannot recover";
	e.status = RAW_SRAR(0x134);
	assert_int_equal(vmce_plan_decide(vm, &e, &plan, &err), 0);
	assert_int_equal(plan.verdict, VMCE_VERDICT_FATAL);
	assert_int_equal(vmce_inject(vm, &plan, &err), 0);
	assert_int_equal(vmce_events_read(vm, 0, &ev, 1), 1);
	assert_string_equal(ev.reason, want);
	assert_true(sim_deliver(vmce_vm_vcpu(vm, 0), true, &d));
	assert_int_equal(d.action, VMCE_ACTION_SHUTDOWN);
	assert_string_equal(d.reason, want);

	/* A plan with an empty reason and nothing kept stays empty. */
	memset(&plan, 0, sizeof(plan));
	assert_int_equal(vmce_plan_reason(&plan, small, sizeof(small)), 0);
	assert_string_equal(small, "");
	vmce_vm_destroy(vm);
}

/* Argument checks: out-of-range vCPUs and malformed plans get a clear error. */
static void test_plan_errors(void **state)
{
	struct vmce_vm *vm = ptest_vm(NULL, 2, 0, VMCE_FATAL_SHUTDOWN);
	struct vmce_host_error e;
	struct vmce_plan plan;
	struct vmce_err err;

	(void)state;
	vmce_host_error_init(&e);
	assert_int_equal(e.vcpu, -1);
	assert_int_equal(e.cls, VMCE_CLASS_AUTO);
	assert_int_equal(e.addr_kind, VMCE_ADDR_NONE);
	e.vcpu = 2;
	assert_int_equal(vmce_plan_error(vm, &e, &plan, &err), -EINVAL);
	assert_string_equal(err.msg, "vcpu 2 is out of range: the VM has 2 vCPU(s)");
	e.vcpu = -5;
	assert_int_equal(vmce_handle_error(vm, &e, NULL, &err), -EINVAL);
	e.vcpu = 0;
	e.addr_lsb = 64;
	assert_int_equal(vmce_plan_error(vm, &e, &plan, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "addr_lsb"));
	e.addr_lsb = 0;
	e.origin = (enum vmce_origin)9;
	assert_int_equal(vmce_plan_error(vm, &e, &plan, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "origin"));

	vmce_host_error_init(&e);
	e.status = RAW_SRAO(0xc0);
	e.misc = 0x8c;
	e.addr_kind = VMCE_ADDR_GPA;
	e.addr = 0x1000;
	assert_int_equal(vmce_plan_error(vm, &e, &plan, &err), 0);
	assert_int_equal(plan.verdict, VMCE_VERDICT_FORWARD);
	plan.target = 7;
	assert_int_equal(vmce_inject(vm, &plan, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "target vcpu 7"));
	plan.target = 0;
	plan.record.bank = 2;
	assert_int_equal(vmce_inject(vm, &plan, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "bank 2"));
	plan.record.bank = 1;
	plan.nr_vcpus = 3;
	assert_int_equal(vmce_inject(vm, &plan, &err), -EINVAL);
	assert_int_equal(vmce_events_last_seq(vm), 0);
	vmce_vm_destroy(vm);
}

/* A full queue: the injection is refused with -EBUSY, logged, and nothing is half-queued. */
static void test_queue_full(void **state)
{
	struct vmce_vm *vm = ptest_vm(NULL, 2, 0, VMCE_FATAL_SHUTDOWN);
	struct vmce_host_error e;
	struct vmce_plan plan;
	struct vmce_err err;
	struct vmce_delivery d;
	struct vmce_counters c;
	unsigned delivered0 = 0;
	int rc;

	(void)state;
	vmce_host_error_init(&e);
	e.status = RAW_SRAR(0x134);
	e.misc = 0x8c;
	e.addr_kind = VMCE_ADDR_GPA;
	e.vcpu = 1;
	/* Fill vCPU 0's queue only: UCNA as CMCI on vCPU 0 (an #MC would be held behind the
	 * first one, see "Held records" in policy.h; a CMCI is not). */
	assert_int_equal(
		vmce_wrmsr(vmce_vm_vcpu(vm, 0), VMCE_MSR_MCi_CTL2(1), VMCE_MCI_CTL2_CMCI_EN),
		VMCE_MSR_OK);
	e.status = ST_VAL | ST_UC | ST_EN | ST_MISCV | ST_ADDRV | 0x9f;
	e.vcpu = 0;
	for (unsigned i = 0; i < 16; i++) {
		e.addr = 0x100000 + i * 0x1000;
		assert_int_equal(vmce_handle_error(vm, &e, NULL, &err), 0);
	}
	/* A broadcast SRAR now: vCPU 0 is a recipient with a full queue. */
	e.status = RAW_SRAR(0x134);
	e.vcpu = 1;
	e.no_broadcast = false;
	e.addr = 0x200000;
	rc = vmce_handle_error(vm, &e, &plan, &err);
	assert_int_equal(rc, -EBUSY);
	assert_non_null(strstr(err.msg, "vcpu 0's delivery queue is full"));
	assert_false(vmce_vcpu_pending(vmce_vm_vcpu(vm, 1)));
	assert_false(vmce_poison_contains(vm, 0x200000));
	vmce_get_counters(vm, &c);
	assert_int_equal(c.refused, 1);
	assert_int_equal(c.forwarded, 16);
	while (sim_deliver(vmce_vm_vcpu(vm, 0), true, &d)) {
		delivered0++;
		vmce_wrmsr(vmce_vm_vcpu(vm, 0), VMCE_MSR_MCG_STATUS, 0);
		vmce_wrmsr(vmce_vm_vcpu(vm, 0), VMCE_MSR_MCi_STATUS(1), 0);
	}
	assert_int_equal(delivered0, 16);
	vmce_vm_destroy(vm);
}

int main(void)
{
	size_t n = sizeof(scenarios) / sizeof(scenarios[0]);
	struct CMUnitTest *tests = calloc(n + 4, sizeof(*tests));
	int rc;

	if (!tests)
		return 1;
	for (size_t i = 0; i < n; i++) {
		tests[i].name = scenarios[i].name;
		tests[i].test_func = run_scenario;
		tests[i].initial_state = (void *)&scenarios[i];
	}
	tests[n].name = "plan json, exact";
	tests[n].test_func = test_plan_json_exact;
	tests[n + 1].name = "plan and inject argument errors";
	tests[n + 1].test_func = test_plan_errors;
	tests[n + 2].name = "queue full: refused, nothing half-queued";
	tests[n + 2].test_func = test_queue_full;
	tests[n + 3].name = "plan decided without text, injected";
	tests[n + 3].test_func = test_plan_decide_inject;
	rc = _cmocka_run_group_tests("policy_table", tests, n + 4, NULL, NULL);
	free(tests);
	return rc;
}
