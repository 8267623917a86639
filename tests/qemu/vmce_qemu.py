#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""vmce_qemu.py - real Linux 6.1 guests on vmce's own machine-check architecture, inside QEMU.

QEMU (patched by qemu/, built by qemu/build.sh) runs an unmodified Debian Linux 6.1 kernel under
its software emulation (TCG) with `-object vmce`: every MCA MSR the guest touches is served by
libvmce, and every error is injected through vmce's policy (QMP vmce-inject, HMP mce).  Each
scenario asserts on the guest console and on QMP (replies and events).

    vmce_qemu.py run SCENARIO --qemu-env FILE --guest-env FILE --work DIR
    vmce_qemu.py list

--qemu-env names the file qemu/build.sh wrote (QEMU=..., VMCE_LIB_DIR=...); --guest-env the
guest.env of tests/linux (KERNEL=..., INITRD=...).  Exit status: 0 pass, 1 fail (with the tail
of the guest console and QEMU's stderr), 77 skipped (with the reason).
"""
import argparse
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time

GUEST_MEM_MB = 256
CPU_INTEL = "qemu64,vendor=GenuineIntel,family=6,model=85,stepping=4"
# LMCE: Ice Lake-SP.  On Skylake-X (model 85) Linux 6.1 takes an LMCE SRAR in bank 1 for the
# REP MOVS erratum ("Erratum detected, disable fast string copy instructions") and returns.
CPU_INTEL_ICX = "qemu64,vendor=GenuineIntel,family=6,model=106,stepping=6"
CPU_AMD = "qemu64,vendor=AuthenticAMD,family=23,model=1,stepping=2"
KERNEL_ARGS = ("console=ttyS0 mce=print_all quiet panic=-1 nokaslr audit=0 tsc=reliable "
               "no_timer_check")
BOOT_TIMEOUT = int(os.environ.get("VMCE_QEMU_BOOT_TIMEOUT", "120"))
WAIT_TIMEOUT = int(os.environ.get("VMCE_QEMU_WAIT_TIMEOUT", "40"))
DEFAULT_PROFILE = "intel,banks=2,ser,tes,cmci"

# MCA warnings Linux prints when the interface misbehaves.
MCA_TROUBLE = (r"MCA architectural violation|unchecked MSR access|mce: .*[Ww]arning|"
               r"mce: .*[Ff]ailed|Machine check.*disabled|CMCI storm|Kernel panic")


class Fail(Exception):
    pass


class Skip(Exception):
    pass


def say(msg):
    print("vmce-qemu: %s" % msg, flush=True)


def read_env(path):
    env = {}
    try:
        with open(path) as f:
            for line in f:
                k, sep, v = line.rstrip("\n").partition("=")
                if sep:
                    env[k] = v
    except OSError as e:
        raise Fail("cannot read %s: %s" % (path, e))
    return env


class QmpError(Exception):
    def __init__(self, cls, desc):
        super().__init__("%s: %s" % (cls, desc))
        self.cls = cls
        self.desc = desc


class Guest:
    """One QEMU process: console over a UNIX socket, QMP over another."""

    def __init__(self, ctx, name, cpus=1, cpu=CPU_INTEL, vmce=DEFAULT_PROFILE, json_object=False,
                 extra=(), incoming=False, qemu=None, wait=True, reboot=False, accel="tcg"):
        self.ctx = ctx
        self.name = name
        self.dir = os.path.join(ctx.work, "run-" + name)
        os.makedirs(self.dir, exist_ok=True)
        for f in os.listdir(self.dir):
            os.unlink(os.path.join(self.dir, f))
        self.serial_path = os.path.join(self.dir, "serial.sock")
        self.qmp_path = os.path.join(self.dir, "qmp.sock")
        self.lines = []
        self.mark_at = 0
        self.events = []
        self.replies = []
        self.cond = threading.Condition()
        self.proc = None
        self.nonce = 0
        self.wait = wait
        args = [qemu or ctx.qemu, "-L", "/usr/share/seabios", "-L", "/usr/share/qemu",
                "-accel", accel, "-machine", "pc", "-cpu", cpu, "-smp", str(cpus),
                "-m", str(GUEST_MEM_MB), "-nodefaults", "-display", "none",
                "-kernel", ctx.kernel, "-initrd", ctx.initrd, "-append", KERNEL_ARGS,
                "-serial", "unix:%s,server=on,wait=on" % self.serial_path,
                "-qmp", "unix:%s,server=on,wait=off" % self.qmp_path]
        if not reboot:
            args.append("-no-reboot")
        if vmce is not None:
            if json_object:
                args += ["-object", json.dumps({"qom-type": "vmce", "id": "vmce0",
                                                "profile": vmce})]
            else:
                args += ["-object", "vmce,id=vmce0,profile=" + vmce.replace(",", ",,")]
        args += list(extra)
        self.incoming = None
        if incoming:
            self.incoming = os.path.join(self.dir, "migrate.sock")
            args += ["-incoming", "unix:" + self.incoming]
        self.args = args

    # ---- process ------------------------------------------------------------------------------

    def start(self):
        say("booting %s: %s" % (self.name, " ".join(self.args[1:])))
        self.stderr = open(os.path.join(self.dir, "qemu.log"), "w")
        env = dict(os.environ)
        env["LD_LIBRARY_PATH"] = self.ctx.libdir
        # A sanitizer build of QEMU (qemu/build.sh --asan): QEMU frees little at exit, and any
        # report fails the scenario (check_sanitizers)
        env["ASAN_OPTIONS"] = "detect_leaks=0"
        env["UBSAN_OPTIONS"] = "print_stacktrace=1"
        self.proc = subprocess.Popen(self.args, stdin=subprocess.DEVNULL,
                                     stdout=self.stderr, stderr=subprocess.STDOUT, env=env)
        self.serial = self._connect(self.serial_path)
        self.qmp_sock = self._connect(self.qmp_path)
        threading.Thread(target=self._read_console, daemon=True).start()
        threading.Thread(target=self._read_qmp, daemon=True).start()
        self.qmp("qmp_capabilities")
        if self.incoming or "-incoming" in self.args or not self.wait:
            return self
        t0 = time.time()
        m = self.expect(r"VMCE-GUEST READY", BOOT_TIMEOUT)
        self.boot_seconds = time.time() - t0
        say("guest ready after %.1fs: %s" % (self.boot_seconds, m))
        return self

    def _connect(self, path):
        deadline = time.time() + 30
        while True:
            if self.proc.poll() is not None:
                raise Fail("QEMU exited (status %d) before %s existed: %s" %
                           (self.proc.returncode, os.path.basename(path), self.qemu_log()))
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(path)
                return s
            except OSError:
                s.close()
                if time.time() > deadline:
                    raise Fail("cannot connect to %s" % path)
                time.sleep(0.05)

    def _read_console(self):
        buf = b""
        with open(os.path.join(self.dir, "console.log"), "wb") as log:
            while True:
                try:
                    data = self.serial.recv(4096)
                except OSError:
                    data = b""
                if not data:
                    break
                log.write(data)
                log.flush()
                buf += data
                *complete, buf = buf.split(b"\n")
                if complete:
                    with self.cond:
                        for line in complete:
                            self.lines.append(line.decode("utf-8", "replace").rstrip("\r"))
                        self.cond.notify_all()
        with self.cond:
            self.console_closed = True
            self.cond.notify_all()

    def _read_qmp(self):
        f = self.qmp_sock.makefile("rb")
        with open(os.path.join(self.dir, "qmp.log"), "w") as log:
            for raw in f:
                try:
                    msg = json.loads(raw)
                except ValueError:
                    continue
                log.write(raw.decode("utf-8", "replace"))
                log.flush()
                with self.cond:
                    if "event" in msg:
                        self.events.append(msg)
                    elif "return" in msg or "error" in msg:
                        self.replies.append(msg)
                    self.cond.notify_all()
        with self.cond:
            self.qmp_closed = True
            self.cond.notify_all()

    def qemu_log(self):
        try:
            with open(os.path.join(self.dir, "qemu.log")) as f:
                return f.read()[-2000:]
        except OSError:
            return ""

    def sanitizer_report(self):
        try:
            with open(os.path.join(self.dir, "qemu.log"), errors="replace") as f:
                log = f.read()
        except OSError:
            return None
        m = re.search(r"ERROR: AddressSanitizer.*|runtime error:.*", log)
        return m.group(0) if m else None

    def alive_process(self):
        return self.proc is not None and self.proc.poll() is None

    def wait_exit(self, timeout):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise Fail("QEMU still runs after %ds" % timeout)

    def close(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for s in ("serial", "qmp_sock"):
            if hasattr(self, s):
                getattr(self, s).close()

    # ---- console ------------------------------------------------------------------------------

    def mark(self):
        with self.cond:
            self.mark_at = len(self.lines)

    def console(self):
        with self.cond:
            return list(self.lines[self.mark_at:])

    def expect(self, regex, timeout=WAIT_TIMEOUT, since=None):
        """Wait for a console line after the mark that matches; return it."""
        pat = re.compile(regex)
        deadline = time.time() + timeout
        start = self.mark_at if since is None else since
        with self.cond:
            while True:
                for line in self.lines[start:]:
                    if pat.search(line):
                        return line
                if not self.alive_process():
                    self.cond.wait(0.3)
                    for line in self.lines[start:]:
                        if pat.search(line):
                            return line
                    raise Fail("QEMU exited while waiting for /%s/ on the console" % regex)
                left = deadline - time.time()
                if left <= 0:
                    raise Fail("no console line matched /%s/ within %ds" % (regex, timeout))
                self.cond.wait(min(left, 0.5))

    def reject(self, regex, what):
        pat = re.compile(regex)
        for line in self.console():
            if pat.search(line):
                raise Fail("%s: %s" % (what, line))

    def send(self, line):
        try:
            self.serial.sendall((line + "\n").encode())
        except OSError as e:
            raise Fail("cannot write to the guest console: %s" % e)

    def ask(self, cmd, end, timeout=WAIT_TIMEOUT):
        """Send an init command that ends with 'VMCE-GUEST END N'; return the lines between."""
        self.nonce += 1
        tag = "%d-%d" % (os.getpid(), self.nonce)
        with self.cond:
            start = len(self.lines)
        self.send("%s %s" % (cmd, tag))
        self.expect(r"VMCE-GUEST %s %s$" % (end, tag), timeout, since=start)
        with self.cond:
            out = self.lines[start:]
        return out[:next(i for i, l in enumerate(out) if l.endswith("%s %s" % (end, tag)))]

    def alive(self):
        self.nonce += 1
        tag = "%d-%d" % (os.getpid(), self.nonce)
        self.send("ping " + tag)
        return self.expect(r"VMCE-GUEST PONG %s$" % tag)

    def dmesg(self):
        return [l[len("VMCE-DMESG "):] for l in self.ask("dmesg", "DMESG-END")
                if l.startswith("VMCE-DMESG ")]

    def irq_counts(self, name):
        """Per-CPU counts of one /proc/interrupts row (e.g. THR)."""
        for l in self.ask("irqs", "IRQS-END"):
            m = re.match(r"VMCE-IRQ %s:\s+(.*)$" % name, l)
            if m:
                return [int(x) for x in m.group(1).split() if x.isdigit()]
        raise Fail("no %s row in /proc/interrupts" % name)

    def free_page(self):
        with self.cond:
            start = len(self.lines)
        self.send("freepage")
        line = self.expect(r"VMCE-PROBE FREEPAGE gpa=0x[0-9a-f]+", since=start)
        gpa = int(re.search(r"gpa=(0x[0-9a-f]+)", line).group(1), 16)
        say("free guest page at %#x" % gpa)
        return gpa

    def start_victim(self, cpu=None):
        with self.cond:
            start = len(self.lines)
        self.send("victim" + ("" if cpu is None else " %d" % cpu))
        line = self.expect(r"VMCE-PROBE VICTIM pid=[0-9]+ va=0x[0-9a-f]+ gpa=0x[0-9a-f]+",
                           since=start)
        va = int(re.search(r" va=(0x[0-9a-f]+)", line).group(1), 16)
        gpa = int(re.search(r" gpa=(0x[0-9a-f]+)", line).group(1), 16)
        say("victim page: va %#x gpa %#x" % (va, gpa))
        time.sleep(1)  # let it reach its load loop
        return va, gpa

    # ---- QMP ----------------------------------------------------------------------------------

    def qmp(self, cmd, **args):
        msg = {"execute": cmd}
        if args:
            msg["arguments"] = {k.replace("_", "-"): v for k, v in args.items()}
        with self.cond:
            n = len(self.replies)
        self.qmp_sock.sendall((json.dumps(msg) + "\n").encode())
        deadline = time.time() + 30
        with self.cond:
            while len(self.replies) <= n:
                if time.time() > deadline or getattr(self, "qmp_closed", False):
                    raise Fail("no QMP reply to %s" % cmd)
                self.cond.wait(0.5)
            reply = self.replies[n]
        if "error" in reply:
            raise QmpError(reply["error"]["class"], reply["error"]["desc"])
        return reply["return"]

    def hmp(self, line, cpu=None):
        args = {"command_line": line}
        if cpu is not None:
            args["cpu_index"] = cpu
        return self.qmp("human-monitor-command", **args)

    def inject(self, **args):
        plans = self.qmp("vmce-inject", **args)
        for p in plans:
            say("vmce-inject %s -> %s %s: %s" % (args, p["verdict"], p["class"], p["reason"]))
        return plans

    def wait_event(self, pred, what, timeout=WAIT_TIMEOUT, start=0):
        deadline = time.time() + timeout
        with self.cond:
            while True:
                for ev in self.events[start:]:
                    if pred(ev):
                        return ev
                left = deadline - time.time()
                if left <= 0:
                    raise Fail("no QMP event %s within %ds" % (what, timeout))
                self.cond.wait(min(left, 0.5))

    def vmce_events(self, kind=None):
        with self.cond:
            evs = [e["data"] for e in self.events if e["event"] == "VMCE"]
        return [e for e in evs if kind is None or e["kind"] == kind]

    def stop_in_user(self, cpu):
        """Pause the VM at a moment where vCPU `cpu` runs in user mode (CS 0x33)."""
        for tries in range(200):
            self.qmp("stop")
            regs = self.hmp("info registers", cpu=cpu)
            cs = re.search(r"^CS =([0-9a-f]{4})", regs, re.M)
            rip = re.search(r"^RIP=([0-9a-f]+)", regs, re.M)
            if cs and cs.group(1) == "0033":
                say("vCPU %d paused in user mode (RIP 0x%s) after %d resume(s)" %
                    (cpu, rip.group(1) if rip else "?", tries))
                return
            self.qmp("cont")
            time.sleep(0.05)
        raise Fail("vCPU %d not seen in user mode in 200 tries" % cpu)


class Ctx:
    def __init__(self, a):
        qenv = read_env(a.qemu_env)
        genv = read_env(a.guest_env)
        self.qemu = qenv.get("QEMU", "")
        self.libdir = qenv.get("VMCE_LIB_DIR", "")
        self.kernel = genv.get("KERNEL", "")
        self.initrd = genv.get("INITRD", "")
        for what, path in (("QEMU", self.qemu), ("kernel", self.kernel),
                           ("initramfs", self.initrd)):
            if not path or not os.path.exists(path):
                raise Fail("%s %r not found (did the build and prepare steps pass?)" %
                           (what, path))
        self.work = a.work
        os.makedirs(self.work, exist_ok=True)
        self.guests = []
        # Debian's QEMU, without vmce: the source of the adoption scenarios
        self.stock_qemu = "/usr/bin/qemu-system-x86_64"

    def guest(self, *args, **kw):
        g = Guest(self, *args, **kw)
        self.guests.append(g)
        return g.start()


def result(scenario, text):
    say("RESULT %s: %s" % (scenario, text))


def pfn(gpa):
    return "%#x" % (gpa >> 12)


def expect_recovered(g, gpa):
    return g.expect(r"Memory failure: %s: recovery action for [^:]*: Recovered" % pfn(gpa))


def check_no_trouble(g, lines=None):
    bad = [l for l in (lines if lines is not None else g.dmesg()) if re.search(MCA_TROUBLE, l)]
    if bad:
        raise Fail("the guest reported MCA trouble: %s" % bad[0])


def bank_files(g):
    banks = [l for l in g.ask("banks", "BANKS-END") if l.startswith("VMCE-GUEST BANK ")]
    return sorted((re.match(r"VMCE-GUEST BANK bank(\d+)=", l).group(1) for l in banks), key=int)


# ---- migration ---------------------------------------------------------------------------------

def migrate(src, dst, bandwidth=None):
    """Start migrating src into dst (-incoming) over a UNIX socket, with the return path (a
    destination that refuses makes the source fail the migration and run on)."""
    for g in (src, dst):
        g.qmp("migrate-set-capabilities",
              capabilities=[{"capability": "return-path", "state": True}])
    if bandwidth:
        src.qmp("migrate-set-parameters", max_bandwidth=bandwidth)
    src.qmp("migrate", uri="unix:" + dst.incoming)


def wait_migration(src, timeout=180):
    deadline = time.time() + timeout
    while time.time() < deadline:
        info = src.qmp("query-migrate")
        if info.get("status") in ("completed", "failed", "cancelled"):
            say("migration %s: %s" % (info["status"], {k: info[k] for k in info
                                                        if k in ("total-time", "downtime")}))
            return info
        time.sleep(0.2)
    raise Fail("the migration did not end within %ds" % timeout)


def wait_running(g, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if g.qmp("query-status")["status"] == "running":
            return
        time.sleep(0.2)
    raise Fail("%s is not running" % g.name)


def scenario_mig_basic(ctx):
    src = ctx.guest("mig_basic_src", cpus=2)
    dst = ctx.guest("mig_basic_dst", cpus=2, incoming=True)
    before = src.qmp("query-vmce")
    migrate(src, dst)
    info = wait_migration(src)
    if info["status"] != "completed":
        raise Fail("migration %s: %s" % (info["status"], info.get("error-desc")))
    wait_running(dst)
    after = dst.qmp("query-vmce")
    for k in ("profile", "mcg-cap"):
        if after[k] != before[k]:
            raise Fail("%s changed across the migration: %s -> %s" % (k, before[k], after[k]))
    pong = dst.alive()
    gpa = dst.free_page()
    dst.mark()
    dst.inject(**{"class": "srao", "gpa": gpa})
    line = expect_recovered(dst, gpa)
    dst.reject("Kernel panic", "the guest panicked")
    dst.alive()
    # The same migration without vmce, for the downtime.
    plain = ctx.guest("mig_basic_plain_src", cpus=2, vmce=None)
    plain_dst = ctx.guest("mig_basic_plain_dst", cpus=2, vmce=None, incoming=True)
    migrate(plain, plain_dst)
    pinfo = wait_migration(plain)
    result("mig_basic", "migrated in %d ms (downtime %d ms; without vmce %d ms, downtime %d ms), "
           "profile %s kept; at the destination %s; %s" %
           (info.get("total-time", -1), info.get("downtime", -1), pinfo.get("total-time", -1),
            pinfo.get("downtime", -1), after["profile"], pong, line))


def scenario_mig_srao_during_copy(ctx):
    src = ctx.guest("mig_copy_src", cpus=2)
    dst = ctx.guest("mig_copy_dst", cpus=2, incoming=True)
    gpa = src.free_page()
    src.mark()
    migrate(src, dst, bandwidth=4 << 20)
    deadline = time.time() + 30
    while True:
        mi = src.qmp("query-migrate")
        if mi.get("status") == "active" and mi.get("ram", {}).get("transferred", 0) > (1 << 20):
            break
        if time.time() > deadline:
            raise Fail("the migration never copied RAM: %s" % mi)
        time.sleep(0.1)
    plan = src.inject(**{"class": "srao", "gpa": gpa})[0]
    line = expect_recovered(src, gpa)
    src.qmp("migrate-set-parameters", max_bandwidth=1 << 30)
    info = wait_migration(src)
    if info["status"] != "completed":
        raise Fail("migration %s: %s" % (info["status"], info.get("error-desc")))
    wait_running(dst)
    pong = dst.alive()
    d = dst.qmp("query-vmce")
    if d["poisoned-pages"] != 1:
        raise Fail("the destination knows %d poisoned pages, not 1" % d["poisoned-pages"])
    if d["delivered"] or any(c["pending"] for c in d["cpus"]):
        raise Fail("the destination delivered or holds the error again: %s" % d)
    n = len([l for l in src.console() if re.search(r"Memory failure: %s:" % pfn(gpa), l)])
    if n != 1:
        raise Fail("the source handled the error %d times" % n)
    dst.reject(r"Memory failure", "the destination handled the error again")
    result("mig_srao_during_copy", "injected at the source during RAM copy (event %d): %s; "
           "destination: 1 poisoned page, nothing delivered again; %s" % (plan["seq"], line, pong))


def scenario_mig_refused(ctx):
    src = ctx.guest("mig_refused_src")
    out = []
    for name, cpu, profile, want in (
            ("vendor", CPU_AMD, "amd,banks=2", r"vmce: incoming migration refused: .*vendor"),
            ("banks", CPU_INTEL, "intel,banks=1,ser,tes,cmci",
             r"vmce: incoming migration refused: .*bank")):
        dst = ctx.guest("mig_refused_" + name, cpu=cpu, vmce=profile, incoming=True)
        migrate(src, dst)
        info = wait_migration(src)
        if info["status"] != "failed":
            raise Fail("a destination with %s was not refused: %s" % (profile, info["status"]))
        dst.wait_exit(30)
        m = re.search(want, dst.qemu_log())
        if not m:
            raise Fail("the destination does not say why: %s" % dst.qemu_log())
        wait_running(src)
        out.append("%s: %s" % (name, m.group(0)))
    gpa = src.free_page()
    src.mark()
    src.inject(**{"class": "srao", "gpa": gpa})
    line = expect_recovered(src, gpa)
    pong = src.alive()
    result("mig_refused", "%s; the source runs on: %s; %s" % (" | ".join(out), line, pong))


RACE_ROUNDS = int(os.environ.get("VMCE_QEMU_RACE_ROUNDS", "20"))


def scenario_mig_race(ctx):
    """Errors injected at the source while the migration ends, at varied moments; one that
    comes after the final save is refused there and injected at the destination."""
    import random
    rnd = random.Random(int(os.environ.get("VMCE_QEMU_RACE_SEED", "12")))
    g = ctx.guest("mig_race_0", cpus=2)
    where = {"source": 0, "destination": 0}
    for i in range(1, RACE_ROUNDS + 1):
        gpa = g.free_page()
        dst = ctx.guest("mig_race_%d" % i, cpus=2, incoming=True)
        migrate(g, dst)
        time.sleep(rnd.uniform(0, 0.8))
        at = g
        try:
            g.inject(**{"class": "srao", "gpa": gpa})
        except QmpError as e:
            if "sent to the migration destination" not in e.desc:
                raise
            at = None
        info = wait_migration(g)
        if info["status"] != "completed":
            raise Fail("round %d: migration %s" % (i, info["status"]))
        wait_running(dst)
        if at is None:
            dst.inject(**{"class": "srao", "gpa": gpa})
            where["destination"] += 1
        else:
            where["source"] += 1
        # Handled exactly once across both processes' consoles: distinct kernel messages
        # (the console shows each twice: printk itself and init's /proc/kmsg stream).
        pat = re.compile(r"(\[ *[0-9.]+\] Memory failure: %s: recovery action.*)" % pfn(gpa))

        def handled():
            return {m.group(1) for x in (g, dst) for l in x.console() for m in [pat.search(l)]
                    if m}
        deadline = time.time() + WAIT_TIMEOUT
        while not handled() and time.time() < deadline:
            time.sleep(0.2)
        time.sleep(1)
        n = len(handled())
        if n != 1:
            raise Fail("round %d: page %#x handled %d times across source and destination" %
                       (i, gpa, n))
        dst.alive()
        g.close()
        g = dst
    result("mig_race", "%d migrations, each with an SRAO racing the end: %d taken at the source "
           "(carried as state), %d refused there after the final save and injected at the "
           "destination; each handled exactly once" % (RACE_ROUNDS, where["source"],
                                                        where["destination"]))


# ---- from QEMU without vmce ----------------------------------------------------------------------

# What a destination needs to adopt a guest of QEMU's own MCA (MCG_CAP 0x100010a: 10 banks, CTL_P,
# SER_P): ctl and ser, and a read-as-zero window over the banks it does not back.
ADOPT_PROFILE = "intel,banks=2,ser,tes,cmci,ctl,compat=10"
ADOPTED = "intel,banks=2,compat=10,ser,ctl"  # the profile the adopted guest keeps


def stock_guest(ctx, name, **kw):
    if not os.access(ctx.stock_qemu, os.X_OK):
        raise Fail("%s (Debian's qemu-system-x86) is missing: make deps installs it" %
                   ctx.stock_qemu)
    return ctx.guest(name, vmce=None, qemu=ctx.stock_qemu, **kw)


def migrate_ok(src, dst):
    migrate(src, dst)
    info = wait_migration(src)
    if info["status"] != "completed":
        raise Fail("migration %s -> %s %s: %s" % (src.name, dst.name, info["status"],
                                                  info.get("error-desc")))
    wait_running(dst)
    return info


def migrate_refused(src, dst, want):
    """The destination refuses: the migration fails, dst exits saying why, src runs on."""
    migrate(src, dst)
    info = wait_migration(src)
    if info["status"] != "failed":
        raise Fail("%s took the guest (%s); it should have refused" % (dst.name, info["status"]))
    dst.wait_exit(30)
    m = re.search(want, dst.qemu_log())
    if not m:
        raise Fail("%s does not say why it refused: %s" % (dst.name, dst.qemu_log()))
    wait_running(src)
    return m.group(0)


def window_use(g):
    """(reads, writes) of banks in the read-as-zero window, and #GPs, over every vCPU."""
    by, _ = msr_counts(g.qmp("query-vmce"))
    w = by.get("window", [0, 0, 0])
    return w[0], w[1], sum(v[2] for v in by.values())


def adopt_and_recover(g):
    """An SRAO on an adopted guest: recovered, every bank the guest saw at boot still polled
    (window reads), no #GP, no MCA warning."""
    r0, w0, gp0 = window_use(g)
    gpa = g.free_page()
    g.mark()
    g.inject(**{"class": "srao", "gpa": gpa})
    line = expect_recovered(g, gpa)
    g.alive()
    r1, w1, gp1 = window_use(g)
    check_no_trouble(g)
    if gp1:
        raise Fail("the guest took %d #GP on machine-check MSRs" % gp1)
    if r1 - r0 < 8:
        raise Fail("the #MC handler read %d window registers, not banks 2-9" % (r1 - r0))
    return line, r1 - r0


def scenario_mig_stock(ctx):
    """Test 5: stock QEMU -> QEMU with vmce; the reverse fails; a guest without MCA is refused."""
    src = stock_guest(ctx, "mig_stock_src", cpus=2)
    seen = bank_files(src)
    if seen != [str(b) for b in range(10)]:
        raise Fail("under QEMU's own MCA the guest lists banks %s, not 0-9" % seen)
    noctl = ctx.guest("mig_stock_noctl", cpus=2, vmce="intel,banks=2,ser,tes,cmci,compat=10",
                      incoming=True)
    why_ctl = migrate_refused(src, noctl, r"vmce: incoming migration refused: .*")
    dst = ctx.guest("mig_stock_dst", cpus=2, vmce=ADOPT_PROFILE, incoming=True)
    info = migrate_ok(src, dst)
    m = re.search(r"vmce: adopted a guest .*", dst.qemu_log())
    if not m:
        raise Fail("the destination does not say it adopted the guest: %s" % dst.qemu_log())
    q = dst.qmp("query-vmce")
    if q["profile"] != ADOPTED or q["backing"] == q["profile"]:
        raise Fail("adopted as %s (backing %s), not %s" % (q["profile"], q["backing"], ADOPTED))
    line, reads = adopt_and_recover(dst)
    after = bank_files(dst)
    if after != seen:
        raise Fail("after the migration Linux lists banks %s, not %s" % (after, seen))
    # The reverse direction fails cleanly: QEMU without vmce does not know the section.
    v = ctx.guest("mig_stock_vmce_src")
    plain = stock_guest(ctx, "mig_stock_to_stock", incoming=True)
    why_rev = migrate_refused(v, plain, r".*'vmce'.*")
    v.alive()
    # A guest without any MCA cannot be adopted.
    nomca = stock_guest(ctx, "mig_stock_nomca_src", cpu=CPU_INTEL + ",-mca,-mce", wait=False)
    d2 = ctx.guest("mig_stock_nomca_dst", vmce=ADOPT_PROFILE, cpu=CPU_INTEL + ",-mca,-mce",
                   incoming=True)
    why_nomca = migrate_refused(nomca, d2, r"vmce: incoming migration refused: .*")
    result("mig_stock", "10 banks at boot under QEMU's own MCA; %s; migrated in %d ms (downtime "
           "%d ms); %s; profile %s; SRAO: %s, %d window reads in the #MC handler, no #GP, "
           "banks listed after: %s; vmce -> QEMU without vmce: %s; no MCA: %s" %
           (why_ctl, info.get("total-time", -1), info.get("downtime", -1), m.group(0),
            q["profile"], line, reads, ",".join(after), why_rev.strip(), why_nomca))


def scenario_mig_window(ctx):
    """Test 6: an adopted guest (banks 2-9 read as zero) migrates on: a narrower window is
    refused, an equal or wider one accepted, and the window keeps reading as zero."""
    src = stock_guest(ctx, "mig_window_stock")
    a = ctx.guest("mig_window_a", vmce=ADOPT_PROFILE, incoming=True)
    migrate_ok(src, a)
    src.close()
    narrow = ctx.guest("mig_window_narrow", vmce="intel,banks=2,ser,tes,cmci,ctl,compat=8",
                       incoming=True)
    why = migrate_refused(a, narrow, r"vmce: incoming migration refused: .*")
    line0, reads0 = adopt_and_recover(a)
    equal = ctx.guest("mig_window_equal", vmce=ADOPT_PROFILE, incoming=True)
    migrate_ok(a, equal)
    a.close()
    line1, reads1 = adopt_and_recover(equal)
    wider = ctx.guest("mig_window_wider", vmce="intel,banks=4,ser,tes,cmci,ctl,lmce,compat=16",
                      incoming=True, reboot=True)
    migrate_ok(equal, wider)
    q = wider.qmp("query-vmce")
    if q["profile"] != ADOPTED:
        raise Fail("the guest's profile changed to %s on a wider destination" % q["profile"])
    line2, reads2 = adopt_and_recover(wider)
    # A reset keeps the adopted profile (it is the VM's until QEMU restarts): Linux boots again
    # and now sees the 2 banks MCG_CAP says, and the window is still there.
    wider.mark()
    wider.qmp("system_reset")
    wider.expect(r"VMCE-GUEST READY", BOOT_TIMEOUT)
    q2 = wider.qmp("query-vmce")
    banks = bank_files(wider)
    if q2["profile"] != ADOPTED or banks != ["0", "1"]:
        raise Fail("after a reset: profile %s, banks %s" % (q2["profile"], banks))
    check_no_trouble(wider)
    result("mig_window", "adopted as %s; compat=8 refused: %s; the source recovers (%d window "
           "reads, no #GP); compat=10 accepted: %d window reads; banks=4,compat=16 accepted "
           "(backing %s, guest keeps %s): %s, %d window reads, no #GP; after a reset the guest "
           "keeps %s and lists banks %s" %
           (ADOPTED, why, reads0, reads1, q["backing"], q["profile"], line2, reads2,
            q2["profile"], ",".join(banks)))


# ---- pool levelling --------------------------------------------------------------------------------

def vmcectl(ctx, *args):
    tool = os.path.join(ctx.libdir, "tools", "vmcectl", "vmcectl")
    p = subprocess.run([tool] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True, timeout=30)
    return p.returncode, p.stdout, p.stderr


def scenario_pool_level(ctx):
    """Two QEMU hosts describe what they back (query-vmce-host): one under TCG, one under KVM
    with KVM's local APIC (no CMCI, no LMCE).  vmcectl levels them and prints the -object vmce
    option; a Linux guest boots with it under TCG, and QEMU under KVM takes it without a warning."""
    tcg = ctx.guest("pool_tcg", wait=False)
    kvm = ctx.guest("pool_kvm", accel="kvm", wait=False)
    files = []
    descs = {}
    for name, g, wrap in (("h-tcg", tcg, True), ("h-kvm", kvm, False)):
        d = g.qmp("query-vmce-host", name=name)
        descs[name] = d
        path = os.path.join(ctx.work, name + ".json")
        with open(path, "w") as f:
            json.dump({"return": d} if wrap else d, f)  # a QMP reply, or just its value
        files.append(path)
    if "cmci" not in descs["h-tcg"]["caps"] or "cmci" in descs["h-kvm"]["caps"] or \
            "lmce" in descs["h-kvm"]["caps"]:
        raise Fail("host descriptions: %s" % descs)
    tcg.close()
    kvm.close()
    rc, out, err = vmcectl(ctx, "profile", "level", "--qemu", *files)
    if rc != 0:
        raise Fail("vmcectl profile level --qemu: status %d: %s" % (rc, err))
    m = re.search(r"^qemu: (-object (\S+))$", out, re.M)
    p = re.search(r"^profile: (\S+)$", out, re.M)
    if not m or not p or not re.search(r"^cmci: dropped: host h-kvm", out, re.M):
        raise Fail("vmcectl profile level --qemu printed: %s" % out)
    rc, jout, err = vmcectl(ctx, "profile", "level", "--qemu", "--json", *files)
    j = json.loads(jout)
    if rc != 0 or j.get("qemu_object") != m.group(2) or j.get("profile") != p.group(1):
        raise Fail("vmcectl profile level --qemu --json: %s %s" % (jout, err))
    # The printed option, as is, on both kinds of host
    g = ctx.guest("pool_guest", vmce=None, extra=["-object", m.group(2)])
    info = g.qmp("query-vmce")
    if info["profile"] != p.group(1):
        raise Fail("the guest got profile %s, not %s" % (info["profile"], p.group(1)))
    seen = bank_files(g)
    k = ctx.guest("pool_kvm_guest", vmce=None, accel="kvm", wait=False,
                  extra=["-object", m.group(2)])
    kinfo = k.qmp("query-vmce")
    time.sleep(1)
    if kinfo["profile"] != p.group(1) or "warning: vmce" in k.qemu_log():
        raise Fail("under KVM: profile %s, log %s" % (kinfo["profile"], k.qemu_log()))
    result("pool_level", "hosts: %s; vmcectl: %s; a Linux guest under TCG boots with it "
           "(banks %s), QEMU under KVM takes it without a warning" %
           ("; ".join("%s %s" % (n, ",".join(d["caps"])) for n, d in descs.items()),
            " | ".join(l for l in out.splitlines() if l.startswith(("profile", "cmci", "lmce",
                                                                   "qemu"))),
            ",".join(seen)))


def vmce_section(data):
    """Offset of the vmce stream's 32-bit length in a saved migration stream: after the section
    header (type 0x04, section id, idstr length 4, "vmce", instance id, version id)."""
    i = data.find(b"\x04vmce")
    if i < 5 or data[i - 5] != 0x04:
        raise Fail("no vmce section in the saved migration stream")
    return i + 5 + 8


def scenario_mig_malformed(ctx):
    src = ctx.guest("mig_malformed_src")
    path = os.path.join(src.dir, "stream.bin")
    src.qmp("migrate", uri="exec:cat > " + path)
    info = wait_migration(src)
    if info["status"] != "completed":
        raise Fail("saving the stream: %s" % info)
    src.close()
    with open(path, "rb") as f:
        data = f.read()
    off = vmce_section(data)
    n = int.from_bytes(data[off:off + 4], "big")
    body = off + 4
    variants = {
        "flipped": data[:body + n // 2] + bytes([data[body + n // 2] ^ 0x40]) +
        data[body + n // 2 + 1:],
        "huge-length": data[:off] + (0x7fffffff).to_bytes(4, "big") + data[off + 4:],
        "truncated": data[:body + n // 3],
        "short-length": data[:off] + (n - 8).to_bytes(4, "big") + data[off + 4:],
    }
    out = []
    for name, blob in variants.items():
        bad = os.path.join(src.dir, name + ".bin")
        with open(bad, "wb") as f:
            f.write(blob)
        g = Guest(ctx, "mig_malformed_" + name, extra=["-incoming", "exec:cat " + bad])
        ctx.guests.append(g)
        g.start()
        status = g.wait_exit(60)
        log = g.qemu_log()
        m = re.search(r"vmce: incoming migration refused: .*", log)
        if status == 0 or status < 0 or not m:
            raise Fail("%s stream: QEMU status %d, log %r" % (name, status, log))
        out.append("%s: %s" % (name, m.group(0)))
    good = Guest(ctx, "mig_malformed_intact", extra=["-incoming", "exec:cat " + path])
    ctx.guests.append(good)
    good.start()
    wait_running(good)
    pong = good.alive()
    result("mig_malformed", "vmce section: %d bytes of vmce stream (1 vCPU) + %d bytes of "
           "pending-#MC flags; " % (n, 4 + 1) + " | ".join(out) +
           "; the intact stream loads: " + pong)


# ---- scenarios ---------------------------------------------------------------------------------

def msr_counts(info):
    """Summed MSR counts by register over every vCPU, and totals per vCPU."""
    by = {}
    for c in info["cpus"]:
        for m in c["msr"]:
            r = by.setdefault(m["register"], [0, 0, 0])
            r[0] += m["reads"]
            r[1] += m["writes"]
            r[2] += m["gp"]
    per_cpu = [(c["msr-reads"], c["msr-writes"]) for c in info["cpus"]]
    return by, per_cpu


def boot_counts(ctx, name, profile, cpus=2):
    g = ctx.guest(name, cpus=cpus, vmce=profile)
    g.alive()
    info = g.qmp("query-vmce")
    by, per_cpu = msr_counts(info)
    gp = sum(v[2] for v in by.values())
    return g, info, by, per_cpu, gp


def scenario_boot_default(ctx):
    g, info, by, per_cpu, gp = boot_counts(ctx, "boot_default", DEFAULT_PROFILE)
    if info["mcg-cap"] != 0x1000c02:
        raise Fail("MCG_CAP %#x, not the default profile's 0x1000c02" % info["mcg-cap"])
    banks = bank_files(g)
    if banks != ["0", "1"]:
        raise Fail("Linux lists banks %s, not exactly 0 and 1" % banks)
    check_no_trouble(g)
    for c in info["cpus"]:
        for b in c["banks"]:
            if not b["ctl2"] & (1 << 30):
                raise Fail("CPU %d bank %d: CTL2 %#x without CMCI_EN: Linux did not take "
                           "the bank for CMCI" % (c["cpu-index"], b["bank"], b["ctl2"]))
    if gp:
        raise Fail("the guest's MCA MSR accesses raised %d #GP" % gp)
    if not all(r > 0 for r, _ in per_cpu):
        raise Fail("a vCPU made no MCA MSR access: %s" % per_cpu)
    g.close()
    # The same boot on the MCA stock QEMU presents (MCG_CAP 0x100010a: 10 banks, CTL_P, SER_P).
    s, sinfo, sby, sper_cpu, sgp = boot_counts(ctx, "boot_stock_caps", "intel,banks=10,ctl,ser")
    if sinfo["mcg-cap"] != 0x100010a:
        raise Fail("stock-like profile gives MCG_CAP %#x, not 0x100010a" % sinfo["mcg-cap"])
    sbanks = bank_files(s)
    if len(sbanks) != 10:
        raise Fail("with 10 banks Linux lists %s" % sbanks)
    s.close()
    fmt = lambda b: ", ".join("%s %d/%d" % (k, v[0], v[1]) for k, v in sorted(b.items())
                              if v[0] or v[1])
    result("boot_default", "banks %s; CMCI_EN on every bank of %d vCPUs; no MCA warning; "
           "MSR reads/writes per vCPU vmce-2 %s vs stock-10 %s; by register (reads/writes, "
           "2 vCPUs) vmce-2: %s | stock-10: %s" %
           (banks, len(info["cpus"]), per_cpu, sper_cpu, fmt(by), fmt(sby)))


def scenario_srao_free(ctx):
    g = ctx.guest("srao_free", json_object=True)
    gpa = g.free_page()
    g.mark()
    plans = g.inject(**{"class": "srao", "gpa": gpa})
    if plans[0]["verdict"] != "forward" or plans[0]["target"] != 0:
        raise Fail("plan: %s" % plans[0])
    line = expect_recovered(g, gpa)
    g.wait_event(lambda e: e["event"] == "VMCE" and e["data"]["kind"] == "delivered",
                 "VMCE delivered")
    g.wait_event(lambda e: e["event"] == "MEMORY_FAILURE" and
                 e["data"]["recipient"] == "guest" and e["data"]["action"] == "inject",
                 "MEMORY_FAILURE guest/inject")
    d = g.vmce_events("delivered")[0]
    if d["bank"] != 1 or d["status"] != 0xbd000000000000c0 or d["addr"] != gpa or \
            d["misc"] != 0x8c or d["mcg-status"] != 5:
        raise Fail("delivered record differs from the SRAO contract: %s" % d)
    g.reject("Kernel panic", "the guest panicked")
    pong = g.alive()
    result("srao_free", "%s; record bank 1 STATUS %#x MCG_STATUS %#x; %s" %
           (line, d["status"], d["mcg-status"], pong))


def scenario_hmp_mce(ctx):
    """HMP `mce` takes a host record and vmce's policy judges it: bank 9 with model-specific
    bits becomes bank 1 without them; `info vmce` shows the state."""
    g = ctx.guest("hmp_mce")
    gpa = g.free_page()
    g.mark()
    out = g.hmp("mce 0 9 0xbd1234000000017a 0x5 %#x 0x8c" % gpa)
    if not re.search(r"vmce: forward srao \(event \d+\): ", out):
        raise Fail("HMP mce answered %r" % out)
    line = expect_recovered(g, gpa)
    d = g.wait_event(lambda e: e["event"] == "VMCE" and e["data"]["kind"] == "delivered",
                     "VMCE delivered")["data"]
    if d["bank"] != 1 or d["status"] != 0xbd0000000000017a or d["addr"] != gpa or \
            d["misc"] != 0x8c:
        raise Fail("the host record was not filtered into vmce's: %s" % d)
    info = g.hmp("info vmce")
    if "profile intel,banks=2,ser,tes,cmci" not in info or "event 2: delivered srao" not in info:
        raise Fail("info vmce: %r" % info)
    pong = g.alive()
    result("hmp_mce", "%s -> bank 1 STATUS %#x (MSCOD 0x1234 filtered), MISC %#x; %s; %s" %
           (out.strip(), d["status"], d["misc"], line, pong))


BURST = int(os.environ.get("VMCE_QEMU_BURST", "24"))


def scenario_burst(ctx):
    """A burst of SRAOs on distinct pages, back to back, into a 4-vCPU guest: those that find
    the guest inside its #MC handler are held by vmce and delivered after it; every page is
    recovered once, no panic."""
    g = ctx.guest("burst", cpus=4)
    with g.cond:
        start = len(g.lines)
    g.send("freepage %d" % BURST)
    deadline = time.time() + WAIT_TIMEOUT
    while True:
        with g.cond:
            gpas = [int(m.group(1), 16) for l in g.lines[start:]
                    for m in [re.search(r"VMCE-PROBE FREEPAGE gpa=(0x[0-9a-f]+)", l)] if m]
        if len(gpas) >= BURST:
            break
        if time.time() > deadline:
            raise Fail("the guest found %d of %d free pages" % (len(gpas), BURST))
        time.sleep(0.2)
    gpas = gpas[:BURST]
    g.mark()
    t0 = time.time()
    for gpa in gpas:
        g.inject(**{"class": "srao", "gpa": gpa})
    injected = time.time() - t0
    for gpa in gpas:
        expect_recovered(g, gpa)
    took = time.time() - t0
    for gpa in gpas:
        msgs = {m.group(1) for l in g.console()
                for m in [re.search(r"(\[ *[0-9.]+\] Memory failure: %s: .*)" % pfn(gpa), l)]
                if m}
        if len(msgs) != 1:
            raise Fail("page %#x handled %d times: %s" % (gpa, len(msgs), msgs))
    g.reject("Kernel panic", "the guest panicked")
    held = len(g.vmce_events("held"))
    pong = g.alive()
    result("burst", "%d SRAOs injected in %.2fs (%d held while the guest was in its handler); "
           "every page recovered once, the last %.1fs after the first injection; %s" %
           (BURST, injected, held, took, pong))


def scenario_srao_victim(ctx):
    g = ctx.guest("srao_victim")
    va, gpa = g.start_victim()
    g.mark()
    g.inject(**{"class": "srao", "gpa": gpa})
    line = expect_recovered(g, gpa)
    g.send("victim?")
    victim = g.expect(r"VMCE-PROBE SIGBUS|VMCE-GUEST VICTIM-(RUNNING|GONE)")
    if "SIGBUS" in victim:
        g.expect(r"VMCE-GUEST VICTIM-EXIT status=42")
    g.reject("Kernel panic", "the guest panicked")
    pong = g.alive()
    result("srao_victim", "%s; victim: %s; %s" % (line, victim, pong))


def srar_on(g, cpu, va, gpa, local=False):
    g.stop_in_user(cpu)
    g.mark()
    args = {"class": "srar", "gpa": gpa, "cpu": cpu}
    if local:
        args["local"] = True
    plans = g.inject(**args)
    g.qmp("cont")
    sig = g.expect(r"VMCE-PROBE SIGBUS si_code=[0-9]+ si_addr=0x[0-9a-f]+")
    code = int(re.search(r"si_code=(\d+)", sig).group(1))
    addr = int(re.search(r"si_addr=(0x[0-9a-f]+)", sig).group(1), 16)
    if code != 4:
        raise Fail("the victim's SIGBUS has si_code %d, not 4 (BUS_MCEERR_AR)" % code)
    if addr >> 12 != va >> 12:
        raise Fail("the victim's SIGBUS names %#x, outside its page %#x" % (addr, va))
    g.expect(r"VMCE-GUEST VICTIM-EXIT status=42")
    ua = g.expect(r"mce: Uncorrected hardware memory error in user-access at %x" % gpa)
    rec = expect_recovered(g, gpa)
    g.reject("Kernel panic", "the guest panicked")
    return plans[0], sig, ua, rec


def scenario_srar_victim(ctx):
    g = ctx.guest("srar_victim")
    va, gpa = g.start_victim()
    plan, sig, ua, rec = srar_on(g, 0, va, gpa)
    pong = g.alive()
    result("srar_victim", "%s; %s; %s; %s" % (sig, ua, rec, pong))


def scenario_smp_broadcast(ctx):
    g = ctx.guest("smp_broadcast", cpus=4)
    gpa = g.free_page()
    g.mark()
    plans = g.inject(**{"class": "srao", "gpa": gpa})
    if not plans[0]["broadcast"]:
        raise Fail("an Intel SRAO without LMCE must be broadcast: %s" % plans[0])
    line = expect_recovered(g, gpa)
    g.wait_event(lambda e: len([x for x in g.vmce_events("delivered")
                                if x["seq"] > plans[0]["seq"]]) >= 4, "4 deliveries")
    cpus = sorted(x["cpu"] for x in g.vmce_events("delivered") if x["seq"] > plans[0]["seq"])
    if cpus != [0, 1, 2, 3]:
        raise Fail("delivered on vCPUs %s, not all 4" % cpus)
    g.reject("Kernel panic", "the guest panicked")
    pong = g.alive()
    result("smp_broadcast", "%s; #MC on vCPUs %s; %s" % (line, cpus, pong))


def scenario_smp_no_broadcast(ctx):
    g = ctx.guest("smp_no_broadcast", cpus=4)
    gpa = g.free_page()
    g.mark()
    text = ("CPU 0 BANK 1\nSTATUS 0xbd0000000000017a\nMCGSTATUS 0x5\nADDR %#x\nMISC 0x8c\n"
            "NOBROADCAST\n" % gpa)
    plans = g.inject(text=text)
    if plans[0]["broadcast"]:
        raise Fail("NOBROADCAST was broadcast: %s" % plans[0])
    line = g.expect(r"Kernel panic - not syncing: Timeout: Not all CPUs entered broadcast "
                    r"exception handler", 60)
    status = g.wait_exit(60)
    result("smp_no_broadcast", "%s; QEMU exited with status %d" % (line, status))


def scenario_smp_srar_pinned(ctx):
    g = ctx.guest("smp_srar_pinned", cpus=4)
    va, gpa = g.start_victim(cpu=2)
    plan, sig, ua, rec = srar_on(g, 2, va, gpa)
    if plan["target"] != 2:
        raise Fail("SRAR target vCPU %d, not 2: %s" % (plan["target"], plan))
    deliveries = [x for x in g.vmce_events("delivered") if x["seq"] > plan["seq"]]
    with_bank = [x["cpu"] for x in deliveries if "bank" in x]
    if with_bank != [2]:
        raise Fail("the bank record reached vCPUs %s, not only 2" % with_bank)
    pong = g.alive()
    result("smp_srar_pinned", "%s; bank record on vCPU 2, bystanders %s; %s; %s" %
           (sig, sorted(x["cpu"] for x in deliveries if "bank" not in x), rec, pong))


def scenario_ucna_cmci(ctx):
    g = ctx.guest("ucna_cmci")
    gpa = g.free_page()
    thr0 = g.irq_counts("THR")
    g.mark()
    t0 = time.time()
    plans = g.inject(**{"class": "ucna", "gpa": gpa})
    if plans[0]["verdict"] != "forward":
        raise Fail("UCNA not forwarded: %s" % plans[0])
    d = g.wait_event(lambda e: e["event"] == "VMCE" and e["data"]["kind"] == "delivered" and
                     e["data"]["seq"] > plans[0]["seq"], "VMCE delivered")["data"]
    if d.get("signal") != "cmci":
        raise Fail("the UCNA was not signalled by CMCI: %s" % d)
    logged = g.expect(r"mce: \[Hardware Error\]: CPU 0: Machine Check: 0 Bank 1: %x" %
                      d["status"], 20)
    took = time.time() - t0
    thr1 = g.irq_counts("THR")
    if sum(thr1) <= sum(thr0):
        raise Fail("no threshold (CMCI) interrupt counted: THR %s -> %s" % (thr0, thr1))
    rec = expect_recovered(g, gpa)
    g.reject("Kernel panic", "the guest panicked")
    pong = g.alive()
    result("ucna_cmci", "logged %.1fs after injection (poll interval 300s): %s; THR %s -> %s; "
           "%s; %s" % (took, logged, thr0, thr1, rec, pong))


def scenario_drop_ce_outside(ctx):
    g = ctx.guest("drop_ce_outside")
    gpa = g.free_page()
    g.mark()
    ce = g.inject(**{"class": "ce", "gpa": gpa})[0]
    out = g.inject(**{"class": "srao", "gpa": 1 << 32})[0]
    for p, what in ((ce, "CE"), (out, "SRAO at 4 GiB")):
        if p["verdict"] != "drop":
            raise Fail("%s not dropped: %s" % (what, p))
    g.wait_event(lambda e: e["event"] == "MEMORY_FAILURE" and
                 e["data"]["recipient"] == "hypervisor" and e["data"]["action"] == "ignore",
                 "MEMORY_FAILURE hypervisor/ignore")
    g.send("mcepoll x")
    g.expect(r"VMCE-GUEST MCEPOLL-DONE x", 30)
    g.reject(r"Machine [Cc]heck|Hardware Error|Memory failure|mce: \[", "the guest saw an error")
    info = g.qmp("query-vmce")
    if info["delivered"] or info["dropped"] != 2:
        raise Fail("counters: delivered %d dropped %d" % (info["delivered"], info["dropped"]))
    pong = g.alive()
    result("drop_ce_outside", "CE: %s; outside: %s; nothing on the console; %s" %
           (ce["reason"], out["reason"], pong))


def scenario_nested_mcip(ctx):
    g = ctx.guest("nested_mcip")
    va, gpa = g.start_victim()
    g.stop_in_user(0)
    g.mark()
    first = g.inject(**{"class": "srao", "gpa": g_free_gpa(gpa)})[0]
    # The stopped vCPU applies the SRAO (MCIP set, #MC raised, not yet taken) before the SRAR
    # comes: otherwise vmce holds the SRAR behind the queued #MC and delivers it after the
    # handler, a different scenario.
    g.wait_event(lambda e: e["event"] == "VMCE" and e["data"]["kind"] == "delivered" and
                 e["data"]["seq"] > first["seq"], "the SRAO applied")
    g.inject(**{"class": "srar", "gpa": gpa, "cpu": 0})
    g.qmp("cont")
    fatal = g.wait_event(lambda e: e["event"] == "VMCE" and e["data"]["kind"] == "fatal",
                         "VMCE fatal")["data"]
    if "MCIP" not in fatal["reason"]:
        raise Fail("the fatal event does not say MCIP: %s" % fatal)
    g.wait_event(lambda e: e["event"] == "MEMORY_FAILURE" and e["data"]["action"] == "reset",
                 "MEMORY_FAILURE reset")
    g.wait_event(lambda e: e["event"] == "SHUTDOWN", "SHUTDOWN")
    g.wait_exit(30)
    log = g.qemu_log()
    m = re.search(r"vmce: vCPU 0: .*MCIP.*", log)
    if not m:
        raise Fail("QEMU's log does not say why: %s" % log)
    result("nested_mcip", "QMP VMCE fatal: %s; QEMU log: %s" % (fatal["reason"], m.group(0)))


def g_free_gpa(gpa):
    # Another page than the victim's: the first SRAO must not be the page the SRAR consumes.
    return gpa ^ 0x1000


def scenario_lmce(ctx):
    g = ctx.guest("lmce", cpus=2, cpu=CPU_INTEL_ICX, vmce=DEFAULT_PROFILE + ",lmce")
    info = g.qmp("query-vmce")
    off = [c["cpu-index"] for c in info["cpus"] if not c["mcg-ext-ctl"] & 1]
    if off:
        raise Fail("Linux did not enable LMCE (MCG_EXT_CTL.LMCE_EN) on vCPUs %s" % off)
    va, gpa = g.start_victim(cpu=1)
    plan, sig, ua, rec = srar_on(g, 1, va, gpa, local=True)
    if not plan["lmce"] or plan["broadcast"]:
        raise Fail("not delivered as a local machine check: %s" % plan)
    deliveries = [x for x in g.vmce_events("delivered") if x["seq"] > plan["seq"]]
    if [x["cpu"] for x in deliveries] != [1] or deliveries[0]["mcg-status"] != 0xf:
        raise Fail("LMCE deliveries: %s" % deliveries)
    pong = g.alive()
    result("lmce", "LMCE_EN on every vCPU; #MC on vCPU 1 only, MCG_STATUS 0xf; %s; %s; %s" %
           (sig, rec, pong))


def amd_guest(ctx, name, succor):
    profile = "amd,banks=2" + (",succor" if succor else "")
    return ctx.guest(name, cpus=1, cpu=CPU_AMD, vmce=profile)


def scenario_amd(ctx):
    out = []
    for succor in (False, True):
        tag = "succor" if succor else "no-succor"
        g = amd_guest(ctx, "amd_srao_" + tag, succor)
        gpa = g.free_page()
        g.mark()
        plan = g.inject(**{"class": "srao", "gpa": gpa})[0]
        d = g.wait_event(lambda e: e["event"] == "VMCE" and e["data"]["kind"] in
                         ("delivered", "masked") and e["data"]["seq"] > plan["seq"],
                         "VMCE delivered")["data"]
        if d.get("signal") != "none" or not d["status"] & (1 << 44):
            raise Fail("AMD SRAO must be a Deferred record for the poller: %s" % d)
        g.send("mcepoll a")
        g.expect(r"VMCE-GUEST MCEPOLL-DONE a", 30)
        line = expect_recovered(g, gpa)
        g.reject("Kernel panic", "the guest panicked")
        g.alive()
        out.append("%s SRAO: Deferred %#x polled -> %s" % (tag, d["status"], line))
        g.close()

        g = amd_guest(ctx, "amd_srar_" + tag, succor)
        va, gpa = g.start_victim()
        g.stop_in_user(0)
        g.mark()
        g.inject(**{"class": "srar", "gpa": gpa, "cpu": 0})
        g.qmp("cont")
        if succor:
            sig = g.expect(r"VMCE-PROBE SIGBUS si_code=4 ")
            g.reject("Kernel panic", "the guest panicked")
            g.alive()
            out.append("succor SRAR: %s, guest alive" % sig)
        else:
            line = g.expect(r"Kernel panic - not syncing: .*", 60)
            out.append("no-succor SRAR: %s (Linux needs SUCCOR to recover on AMD)" % line)
        g.close()
    result("amd", "; ".join(out))


def scenario_banks32(ctx):
    g = ctx.guest("banks32", vmce="intel,banks=32,ser,tes")
    banks = bank_files(g)
    if banks != [str(i) for i in range(32)]:
        raise Fail("Linux lists banks %s, not 0-31" % banks)
    before = g.qmp("query-vmce")["cpus"][0]
    g.send("mcepoll p")
    g.expect(r"VMCE-GUEST MCEPOLL-DONE p", 30)
    after = g.qmp("query-vmce")["cpus"][0]
    st = lambda c: next(m["reads"] for m in c["msr"] if m["register"] == "status")
    polled = st(after) - st(before)
    if polled < 32:
        raise Fail("a poll read %d bank STATUS registers, not all 32" % polled)
    check_no_trouble(g)
    result("banks32", "Linux lists 32 banks; %d STATUS reads since the poll began (>= 32 a "
           "poll), %d MSR reads in all" % (polled, after["msr-reads"] - before["msr-reads"]))


def refused(ctx, name, extra_args, cpu, want):
    """QEMU must refuse to start with extra_args, saying /want/ on stderr."""
    env = dict(os.environ, LD_LIBRARY_PATH=ctx.libdir)
    p = subprocess.run([ctx.qemu, "-L", "/usr/share/seabios", "-accel", "tcg",
                                     "-machine", "pc", "-cpu", cpu, "-nodefaults",
                                     "-display", "none", "-S"] + extra_args,
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60,
                       env=env)
    if p.returncode == 0 or not re.search(want, p.stderr):
        raise Fail("%s: QEMU status %d, stderr %r (wanted /%s/)" %
                   (name, p.returncode, p.stderr, want))
    return p.stderr.strip().splitlines()[-1]


def scenario_bad_object(ctx):
    out = [refused(ctx, "bad_profile", ["-object", "vmce,id=v,profile=intel,,banks=99"],
                   CPU_INTEL, r"vmce: invalid profile 'intel,banks=99': .*banks"),
           refused(ctx, "bad_json", ["-object", '{"qom-type":"vmce","id":"v",'
                                     '"profile":"intel,banks=2,bogus"}'],
                   CPU_INTEL, r"vmce: invalid profile .*bogus"),
           refused(ctx, "vendor_mismatch", ["-object", "vmce,id=v,profile=amd,,banks=2"],
                   CPU_INTEL, r"vmce: profile 'amd,banks=2' is for amd CPUs, but the CPU "
                   r"model's vendor is GenuineIntel"),
           refused(ctx, "two_objects", ["-object", "vmce,id=a", "-object", "vmce,id=b"],
                   CPU_INTEL, r"vmce: a machine takes one vmce object")]
    result("bad_object", " | ".join(out))


SCENARIOS = {
    "boot_default": scenario_boot_default,
    "srao_free": scenario_srao_free,
    "srao_victim": scenario_srao_victim,
    "burst": scenario_burst,
    "hmp_mce": scenario_hmp_mce,
    "srar_victim": scenario_srar_victim,
    "smp_broadcast": scenario_smp_broadcast,
    "smp_no_broadcast": scenario_smp_no_broadcast,
    "smp_srar_pinned": scenario_smp_srar_pinned,
    "ucna_cmci": scenario_ucna_cmci,
    "drop_ce_outside": scenario_drop_ce_outside,
    "nested_mcip": scenario_nested_mcip,
    "lmce": scenario_lmce,
    "amd": scenario_amd,
    "banks32": scenario_banks32,
    "bad_object": scenario_bad_object,
    "mig_basic": scenario_mig_basic,
    "mig_srao_during_copy": scenario_mig_srao_during_copy,
    "mig_refused": scenario_mig_refused,
    "mig_malformed": scenario_mig_malformed,
    "mig_stock": scenario_mig_stock,
    "pool_level": scenario_pool_level,
    "mig_window": scenario_mig_window,
    "mig_race": scenario_mig_race,
}


def main(scenarios=None, ctx_class=None, guest_option="--guest-env", doc=None):
    """`list` and `run SCENARIO`; the KVM harness (vmce_qemu_kvm.py) passes its own scenarios,
    context class and guest option."""
    scenarios = SCENARIOS if scenarios is None else scenarios
    ctx_class = Ctx if ctx_class is None else ctx_class
    ap = argparse.ArgumentParser(description=(doc or __doc__).splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list")
    r = sub.add_parser("run")
    r.add_argument("scenario", choices=sorted(scenarios))
    r.add_argument("--qemu-env", required=True)
    r.add_argument(guest_option, required=True)
    r.add_argument("--work", required=True)
    a = ap.parse_args()
    if a.cmd == "list":
        print(" ".join(scenarios))
        return 0
    ctx = None
    try:
        ctx = ctx_class(a)
        t0 = time.time()
        scenarios[a.scenario](ctx)
        for g in ctx.guests:
            g.close()
            report = g.sanitizer_report()
            if report:
                raise Fail("%s: sanitizer report: %s" % (g.name, report))
        say("PASS %s in %.1fs" % (a.scenario, time.time() - t0))
        return 0
    except Skip as e:
        say("SKIP: %s" % e)
        return 77
    except (Fail, QmpError) as e:
        say("FAIL [%s]: %s" % (a.scenario, e))
        for g in (ctx.guests if ctx else []):
            print("---- %s: guest console (last 40 lines) ----" % g.name)
            with g.cond:
                print("\n".join(g.lines[-40:]))
            print("---- %s: QEMU output ----\n%s" % (g.name, g.qemu_log()))
        return 1
    finally:
        for g in (ctx.guests if ctx else []):
            g.close()


if __name__ == "__main__":
    sys.exit(main())
