#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""vmce_qemu_kvm.py - vmce inside QEMU under KVM (-accel kvm), with a tiny multiboot guest.

A Linux kernel is far too slow under a KVM that emulates each instruction, so the guest is
tests/qemu/kvm-guest (32-bit, a few hundred instructions of setup): it reads the machine-check
MSRs, checks vmce's #GP rules, prints every #MC it takes and answers commands on COM1.  QEMU runs
with `-accel kvm -object vmce`: the guest's MCA MSRs reach vmce through KVM's MSR filter and
user-space MSR exits, #MC goes in through KVM_SET_VCPU_EVENTS, and host memory errors arrive as
real SIGBUS signals (BUS_MCEERR_AO/AR) on QEMU's vCPU thread.

    vmce_qemu_kvm.py run kvm --qemu-env FILE --guest FILE --work DIR
    vmce_qemu_kvm.py list

Exit status: 0 pass, 1 fail (with the guest console and QEMU's output), 77 skipped (no usable
/dev/kvm).
"""
import ctypes
import os
import re
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vmce_qemu  # noqa: E402
from vmce_qemu import Fail, Skip, QmpError, say, read_env  # noqa: E402

CPU_INTEL = vmce_qemu.CPU_INTEL
GUEST_MEM_MB = 64
READY_TIMEOUT = int(os.environ.get("VMCE_QEMU_KVM_READY_TIMEOUT", "60"))
WAIT = 20

# What the guest must see with the default profile (intel,banks=2,ser,tes,cmci)
WANT_MSRS = {"MCG_CAP": "0x1000c02", "MCG_STATUS": "0x0", "MC0_CTL": "0xffffffffffffffff",
             "MC1_CTL": "0xffffffffffffffff", "MC1_STATUS": "0x0", "P5_MC_ADDR": "0x0",
             "P5_MC_TYPE": "0x0",
             # QEMU's own filter entry (kvm_rdmsr_core_thread_count): 1 core, 1 thread
             "CORE_THREAD_COUNT": "0x10001"}
# docs/msr-contract.md: 1 = the access raised #GP
WANT_GP = {"rd_bank_past_count": 1, "rd_mcg_ctl": 1, "wr_mcg_ctl": 1, "wr_mcg_cap": 1,
           "wr_mcg_status_reserved": 1, "wr_mcg_status_zero": 0, "wr_mc1_status_nonzero": 1,
           "wr_mc1_status_zero": 0, "wr_mc1_ctl_ones": 0, "rd_mcg_ext_ctl": 1,
           "wr_mc1_ctl2_reserved": 1, "wr_mc1_ctl2_cmci_en": 0}
CMCI_WARNING = "has no LVT CMCI that vmce can raise"

# ---- a real SIGBUS with a machine-check si_code, sent to one thread of QEMU ----------------------
#
# The kernel lets a process send itself a signal with a kernel si_code (rt_tgsigqueueinfo, as
# tests/kvm does), but not another process: from outside QEMU the test stops the thread at the
# delivery of a plain SIGBUS (ptrace), replaces its siginfo with BUS_MCEERR_AR/AO and the host
# address (PTRACE_SETSIGINFO) and lets it be delivered - what the kernel's memory-failure code
# sends, to QEMU's own SIGBUS handler.

PTRACE_CONT, PTRACE_DETACH = 7, 17
PTRACE_SETSIGINFO, PTRACE_SEIZE = 0x4203, 0x4206
WALL = 0x40000000
SYS_TGKILL = 234
BUS_MCEERR_AR, BUS_MCEERR_AO = 4, 5

_libc = ctypes.CDLL(None, use_errno=True)
_libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
_libc.ptrace.restype = ctypes.c_long
_libc.syscall.restype = ctypes.c_long


def _check(r, what):
    if r < 0:
        e = ctypes.get_errno()
        raise Fail("%s: %s" % (what, os.strerror(e)))


def send_mce_sigbus(pid, tid, code, addr, lsb=12):
    """Deliver SIGBUS with si_code `code` and si_addr `addr` to thread `tid` of process `pid`."""
    _check(_libc.ptrace(PTRACE_SEIZE, tid, None, None), "ptrace(SEIZE, %d)" % tid)
    try:
        _check(_libc.syscall(SYS_TGKILL, ctypes.c_int(pid), ctypes.c_int(tid),
                             ctypes.c_int(signal.SIGBUS)), "tgkill")
        deadline = time.time() + 10
        while True:
            wpid, status = os.waitpid(tid, WALL | os.WNOHANG)
            if wpid == tid:
                if not os.WIFSTOPPED(status):
                    raise Fail("thread %d did not stop (status %#x)" % (tid, status))
                sig = os.WSTOPSIG(status)
                if sig == signal.SIGBUS:
                    break
                # another signal (e.g. QEMU's SIG_IPI kick): let it through
                _check(_libc.ptrace(PTRACE_CONT, tid, None, ctypes.c_void_p(sig)), "ptrace(CONT)")
                continue
            if time.time() > deadline:
                raise Fail("thread %d never reached the SIGBUS delivery" % tid)
            time.sleep(0.01)
        si = ctypes.create_string_buffer(128)          # siginfo_t, x86-64 layout
        ctypes.memmove(ctypes.addressof(si), ctypes.byref(ctypes.c_int(signal.SIGBUS)), 4)
        ctypes.memmove(ctypes.addressof(si) + 8, ctypes.byref(ctypes.c_int(code)), 4)
        ctypes.memmove(ctypes.addressof(si) + 16, ctypes.byref(ctypes.c_uint64(addr)), 8)
        ctypes.memmove(ctypes.addressof(si) + 24, ctypes.byref(ctypes.c_short(lsb)), 2)
        _check(_libc.ptrace(PTRACE_SETSIGINFO, tid, None, si), "ptrace(SETSIGINFO)")
    finally:
        # detach, delivering the stopped SIGBUS (with the new siginfo) to QEMU's handler
        _libc.ptrace(PTRACE_DETACH, tid, None, ctypes.c_void_p(signal.SIGBUS))


# ---- QEMU with the tiny guest ---------------------------------------------------------------------

class KvmGuest(vmce_qemu.Guest):
    def __init__(self, ctx, name, extra=()):
        # the parent builds a Linux command line; this one is built here
        super().__init__(ctx, name)
        self.args = [ctx.qemu, "-L", "/usr/share/seabios", "-L", "/usr/share/qemu",
                     "-accel", "kvm", "-machine", "pc", "-cpu", CPU_INTEL, "-smp", "1",
                     "-m", str(GUEST_MEM_MB), "-nodefaults", "-display", "none", "-no-reboot",
                     "-nic", "none", "-kernel", ctx.guest,
                     "-device", "isa-debug-exit,iobase=0xf4,iosize=1",
                     "-serial", "unix:%s,server=on,wait=on" % self.serial_path,
                     "-qmp", "unix:%s,server=on,wait=off" % self.qmp_path,
                     "-object", "vmce,id=vmce0,profile=intel,,banks=2,,ser,,tes,,cmci",
                     "-trace", "vmce_ram_add", "-trace", "vmce_ram_del"] + list(extra)

    def start(self):
        say("starting %s: %s" % (self.name, " ".join(self.args[1:])))
        env = dict(os.environ)
        env["LD_LIBRARY_PATH"] = self.ctx.libdir
        self.stderr = open(os.path.join(self.dir, "qemu.log"), "w")
        self.t0 = time.time()
        self.proc = subprocess.Popen(self.args, stdin=subprocess.DEVNULL, stdout=self.stderr,
                                     stderr=subprocess.STDOUT, env=env)
        self.serial = self._connect(self.serial_path)
        self.qmp_sock = self._connect(self.qmp_path)
        threading.Thread(target=self._read_console, daemon=True).start()
        threading.Thread(target=self._read_qmp, daemon=True).start()
        self.qmp("qmp_capabilities")
        self.expect(r"^VMCE-KVM READY$", READY_TIMEOUT)
        self.ready_seconds = time.time() - self.t0
        say("guest ready after %.1fs" % self.ready_seconds)
        return self

    def full_log(self):
        with open(os.path.join(self.dir, "qemu.log")) as f:
            return f.read()

    def hva_of(self, gpa):
        """The host address of guest-physical gpa, from vmce's memory listener (trace)."""
        ranges = {}
        for m in re.finditer(r"vmce_ram_(add|del) gpa (0x[0-9a-f]+)(?: size (0x[0-9a-f]+) "
                             r"hva (0x[0-9a-f]+))?", self.full_log()):
            start = int(m.group(2), 16)
            if m.group(1) == "add":
                ranges[start] = (int(m.group(3), 16), int(m.group(4), 16))
            else:
                ranges.pop(start, None)
        for start, (size, hva) in ranges.items():
            if start <= gpa < start + size:
                return hva + (gpa - start)
        raise Fail("gpa %#x is in no guest RAM range vmce traced: %s" % (gpa, ranges))

    def vcpu_tid(self):
        return self.qmp("query-cpus-fast")[0]["thread-id"]

    def key(self, c, pattern):
        """Send one command key; return the first line after it that matches."""
        with self.cond:
            start = len(self.lines)
        self.serial.sendall(c.encode())
        return self.expect(pattern, WAIT, since=start)

    def mc_lines(self):
        return [l for l in self.console() if l.startswith("VMCE-KVM MC ")]


def parse_record(line):
    rec = dict(re.findall(r"(\w+)=(0x[0-9a-f]+)", line))
    return {k: int(v, 16) for k, v in rec.items()}


def check_record(g, line, gpa, status, mcg_status, what):
    """The guest's record must be bank 1, the class's STATUS, ADDR = gpa, MISC 0x8c, and the
    one vmce's event log says it delivered."""
    rec = parse_record(line)
    want = {"bank": 1, "status": status, "addr": gpa, "misc": 0x8c, "mcg_status": mcg_status}
    if rec != want:
        raise Fail("%s: the guest's record %s, expected %s" %
                   (what, {k: hex(v) for k, v in rec.items()}, {k: hex(v) for k, v in want.items()}))
    # The QMP event is sent from QEMU's main loop, the console line from the vCPU: either may
    # come first
    try:
        g.wait_event(lambda e: e["event"] == "VMCE" and e["data"]["kind"] == "delivered" and
                     e["data"].get("gpa") == gpa, "VMCE delivered", timeout=10)
    except Fail:
        raise Fail("%s: no VMCE delivered event for gpa %#x" % (what, gpa))
    ev = [e for e in g.vmce_events("delivered") if e.get("gpa") == gpa]
    e = ev[-1]
    got = {"bank": e["bank"], "status": e["status"], "addr": e["addr"], "misc": e["misc"],
           "mcg_status": e["mcg-status"]}
    if got != want:
        raise Fail("%s: vmce delivered %s, the guest read %s" % (what, got, want))
    say("%s: %s" % (what, line))


def expect_mc(g, start, gpa, status, mcg_status, what):
    line = g.expect(r"^VMCE-KVM MC bank=0x1 .*addr=%#x " % gpa, WAIT, since=start)
    g.expect(r"^VMCE-KVM MC done$", WAIT, since=start)  # the handler cleared MCIP
    check_record(g, line, gpa, status, mcg_status, what)


SRAO_STATUS = 0xbd000000000000c0
GP_RACE_ROUNDS = 10
SRAR_STATUS = 0xbd80000000000134


def scenario_kvm(ctx):
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        raise Skip("no usable /dev/kvm")
    t0 = time.time()
    g = KvmGuest(ctx, "kvm")
    ctx.guests.append(g)
    g.start()

    # 1. the MSRs and the #GP rules, through KVM's MSR filter
    lines = g.console()
    msrs = dict(re.match(r"VMCE-KVM MSR (\S+) (\S+)", l).groups()
                for l in lines if l.startswith("VMCE-KVM MSR "))
    for k, v in WANT_MSRS.items():
        if msrs.get(k) != v:
            raise Fail("MSR %s read %s, expected %s" % (k, msrs.get(k), v))
    gp = {m.group(1): int(m.group(2)) for m in
          (re.match(r"VMCE-KVM GP (\S+) ([01])", l) for l in lines) if m}
    if gp != WANT_GP:
        raise Fail("#GP rules: the guest saw %s, expected %s" % (gp, WANT_GP))
    if msrs.get("MC1_CTL2") != "0x40000001":
        raise Fail("MC1_CTL2 read back %s after writing 0x40000001" % msrs.get("MC1_CTL2"))
    info = g.qmp("query-vmce")
    cpu0 = info["cpus"][0]
    vmce_gp = sum(m["gp"] for m in cpu0["msr"])
    if vmce_gp != sum(WANT_GP.values()):
        raise Fail("vmce counted %d #GP, the guest raised %d" % (vmce_gp, sum(WANT_GP.values())))
    say("MSRs %s; #GP rules as docs/msr-contract.md (%d #GP); vmce counted %d reads, %d writes"
        % (msrs, vmce_gp, cpu0["msr-reads"], cpu0["msr-writes"]))

    # 2. CMCI: KVM's in-kernel APIC has no LVT CMCI here: QEMU says so at start, and the guest
    #    sees max LVT 5 (so Linux ignores MCG_CAP.CMCI_P and polls)
    if CMCI_WARNING not in g.full_log():
        raise Fail("no warning that KVM's local APIC has no LVT CMCI")
    line = g.key("a", r"^VMCE-KVM APIC maxlvt=")
    if line != "VMCE-KVM APIC maxlvt=0x5":
        raise Fail("KVM's local APIC: %r, expected max LVT 5 (no LVT CMCI)" % line)

    pid = g.proc.pid
    tid = g.vcpu_tid()

    # 3. SIGBUS BUS_MCEERR_AO on the vCPU thread -> SRAO #MC, bank 1, through vmce's policy
    for code, gpa, status, mcg, what in (
            (BUS_MCEERR_AO, 0x200000, SRAO_STATUS, 0x5, "SIGBUS AO"),
            (BUS_MCEERR_AR, 0x201000, SRAR_STATUS, 0x7, "SIGBUS AR")):
        hva = g.hva_of(gpa)
        with g.cond:
            start = len(g.lines)
        say("%s: si_addr %#x (gpa %#x) to vCPU thread %d" % (what, hva, gpa, tid))
        send_mce_sigbus(pid, tid, code, hva)
        expect_mc(g, start, gpa, status, mcg, what)
        if not re.search(r"vmce: host memory error at QEMU addr 0x%x \(BUS_MCEERR_%s\): forward" %
                         (hva, "AR" if code == BUS_MCEERR_AR else "AO"), g.full_log()):
            raise Fail("%s: QEMU did not log vmce's verdict" % what)
    if re.search(r"bank 9|Guest MCE Memory Error", g.full_log()):
        raise Fail("QEMU's own SIGBUS path (bank 9) ran")

    # 4. QMP vmce-inject
    with g.cond:
        start = len(g.lines)
    g.inject(**{"class": "srao", "gpa": 0x202000})
    expect_mc(g, start, 0x202000, SRAO_STATUS, 0x5, "vmce-inject srao")

    # 5. a state sync between injection and delivery does not lose the queued #MC: stop the VM,
    #    inject (vmce applies the record and raises CPU_INTERRUPT_MCE on the stopped vCPU), sync
    #    the registers (info registers), then cont: the guest takes exactly that #MC
    g.qmp("stop")
    with g.cond:
        start = len(g.lines)
    g.inject(**{"class": "srao", "gpa": 0x203000})
    deadline = time.time() + WAIT
    while True:
        bank1 = g.qmp("query-vmce")["cpus"][0]["banks"][1]
        if bank1["status"] == SRAO_STATUS and bank1["addr"] == 0x203000:
            break
        if time.time() > deadline:
            raise Fail("the stopped vCPU did not apply the record: bank 1 %s" % bank1)
        time.sleep(0.1)
    regs = g.hmp("info registers")
    if "CR4=" not in regs:
        raise Fail("info registers: %s" % regs[:200])
    bank1 = g.qmp("query-vmce")["cpus"][0]["banks"][1]
    if bank1["status"] != SRAO_STATUS:
        raise Fail("the register sync changed vmce's bank 1: %s" % bank1)
    time.sleep(0.5)
    if [l for l in g.console()[start:] if l.startswith("VMCE-KVM MC ")]:
        raise Fail("the guest took an #MC while stopped")
    g.qmp("cont")
    expect_mc(g, start, 0x203000, SRAO_STATUS, 0x5, "after stop, info registers, cont")

    # 5b. the same race with a running vCPU: a register sync right behind each injection
    for i, gpa in enumerate((0x206000, 0x207000, 0x208000)):
        with g.cond:
            start = len(g.lines)
        g.inject(**{"class": "srao", "gpa": gpa})
        g.hmp("info registers")
        expect_mc(g, start, gpa, SRAO_STATUS, 0x5, "inject, info registers (%d)" % (i + 1))

    # 5c. errors while the guest raises #GP after #GP (an MSR exit whose #GP KVM injects only
    #     at the next KVM_RUN): every #MC still arrives, once
    g.key("g", r"^VMCE-KVM GPLOOP on$")
    for i in range(GP_RACE_ROUNDS):
        gpa = 0x210000 + i * 0x1000
        with g.cond:
            start = len(g.lines)
        g.inject(**{"class": "srao", "gpa": gpa})
        expect_mc(g, start, gpa, SRAO_STATUS, 0x5, "inject during #GP loop (%d)" % (i + 1))
    g.key("g", r"^VMCE-KVM GPLOOP off$")

    # 6. UCNA: forwarded to bank 1 for CMCI, which KVM's APIC cannot raise: no #MC, and the
    #    guest's poll finds the record
    with g.cond:
        start = len(g.lines)
    plans = g.inject(**{"class": "ucna", "gpa": 0x204000})
    if plans[0]["verdict"] != "forward":
        raise Fail("UCNA: %s" % plans[0])
    g.wait_event(lambda e: e["event"] == "VMCE" and e["data"]["kind"] == "delivered" and
                 e["data"].get("gpa") == 0x204000, "UCNA delivered")
    line = g.key("p", r"^VMCE-KVM POLL bank=")
    rec = parse_record(line)
    if rec["bank"] != 1 or rec["addr"] != 0x204000 or not rec["status"] >> 63 or \
            rec["status"] & (1 << 56):
        raise Fail("UCNA: the poll read %s" % line)
    say("UCNA without LVT CMCI, found by polling: %s" % line)

    # 7. exactly one #MC per error, no other exception, all #GP as expected
    line = g.key("c", r"^VMCE-KVM COUNT ")
    want = "VMCE-KVM COUNT mc=%#x gp=" % (7 + GP_RACE_ROUNDS)
    if not line.startswith(want):
        raise Fail("counts: %r, expected %r..." % (line, want))
    g.reject(r"EXCEPTION|MC none", "unexpected guest exception")
    n_mc = len([l for l in g.console() if l.startswith("VMCE-KVM MC bank=")])
    if n_mc != 7 + GP_RACE_ROUNDS:
        raise Fail("the guest printed %d #MC records, expected %d" % (n_mc, 7 + GP_RACE_ROUNDS))
    cnt = g.qmp("query-vmce")
    n = 8 + GP_RACE_ROUNDS
    if (cnt["forwarded"], cnt["delivered"]) != (n, n):
        raise Fail("vmce counters: forwarded %d delivered %d, expected %d each" %
                   (cnt["forwarded"], cnt["delivered"], n))
    g.key("q", r"^VMCE-KVM BYE$")
    rc = g.wait_exit(WAIT)
    if rc != 1:  # isa-debug-exit: (0 << 1) | 1
        raise Fail("QEMU exited with %d, expected 1 (isa-debug-exit)" % rc)
    say("RESULT kvm: guest ready in %.1fs, whole scenario %.1fs" %
        (g.ready_seconds, time.time() - t0))


def scenario_kvm_cmci(ctx):
    """kernel-irqchip=off: QEMU's own local APIC (with vmce's LVT CMCI) under KVM."""
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        raise Skip("no usable /dev/kvm")
    t0 = time.time()
    g = KvmGuest(ctx, "kvm-cmci")
    g.args[g.args.index("pc")] = "pc,kernel-irqchip=off"
    ctx.guests.append(g)
    g.start()
    if CMCI_WARNING in g.full_log():
        raise Fail("the LVT CMCI warning with QEMU's own APIC")
    line = g.key("a", r"^VMCE-KVM APIC maxlvt=")
    if line != "VMCE-KVM APIC maxlvt=0x6":
        raise Fail("QEMU's local APIC: %r, expected max LVT 6 (LVT CMCI)" % line)
    with g.cond:
        start = len(g.lines)
    g.inject(**{"class": "ucna", "gpa": 0x205000})
    line = g.expect(r"^VMCE-KVM CMCI bank=0x1 .*addr=0x205000 ", WAIT, since=start)
    g.expect(r"^VMCE-KVM CMCI done$", WAIT, since=start)
    rec = parse_record(line)
    ev = [e for e in g.vmce_events("delivered") if e.get("gpa") == 0x205000]
    if not ev or ev[-1]["signal"] != "cmci" or ev[-1]["status"] != rec["status"]:
        raise Fail("UCNA: the guest's CMCI read %s, vmce delivered %s" % (line, ev))
    say("UCNA through LVT CMCI: %s" % line)
    with g.cond:
        start = len(g.lines)
    g.inject(**{"class": "srao", "gpa": 0x206000})
    expect_mc(g, start, 0x206000, SRAO_STATUS, 0x5, "vmce-inject srao")
    line = g.key("c", r"^VMCE-KVM COUNT ")
    if not line.startswith("VMCE-KVM COUNT mc=0x1 "):
        raise Fail("counts: %r" % line)
    g.reject(r"EXCEPTION|MC none", "unexpected guest exception")
    g.key("q", r"^VMCE-KVM BYE$")
    g.wait_exit(WAIT)
    say("RESULT kvm_cmci: guest ready in %.1fs, whole scenario %.1fs" %
        (g.ready_seconds, time.time() - t0))


SCENARIOS = {"kvm": scenario_kvm, "kvm_cmci": scenario_kvm_cmci}


class Ctx:
    def __init__(self, a):
        qenv = read_env(a.qemu_env)
        self.qemu = qenv.get("QEMU", "")
        self.libdir = qenv.get("VMCE_LIB_DIR", "")
        self.guest = a.guest
        self.kernel = self.initrd = a.guest  # for vmce_qemu.Guest, whose command line is replaced
        for what, path in (("QEMU", self.qemu), ("guest", self.guest)):
            if not path or not os.path.exists(path):
                raise Fail("%s %r not found" % (what, path))
        self.work = a.work
        os.makedirs(self.work, exist_ok=True)
        self.guests = []


def main():
    return vmce_qemu.main(SCENARIOS, Ctx, "--guest", __doc__)


if __name__ == "__main__":
    sys.exit(main())
