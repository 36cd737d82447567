"""Stopping a jwt-issuer process the CI checks started, within a bound.

A process that does not end within the bound after SIGTERM is reported with what each of its
threads is doing (its name, state and kernel wait channel from /proc, and every thread's stack
from gdb when gdb is installed), then killed, and the check fails: CI never waits on it for
ever, and the report says where it stood.
"""

import os
import shutil
import subprocess
import sys


class Stuck(Exception):
    """A process did not end in time; the message carries its threads' report."""


def threads(pid):
    """One line per thread of `pid`: its id, name, state and wait channel."""
    lines = []
    try:
        tids = sorted(os.listdir(f"/proc/{pid}/task"), key=int)
    except OSError as e:
        return [f"  (no /proc/{pid}/task: {e})"]
    for tid in tids:
        base = f"/proc/{pid}/task/{tid}"
        try:
            with open(f"{base}/comm") as f:
                name = f.read().strip()
            with open(f"{base}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
            with open(f"{base}/wchan") as f:
                wchan = f.read().strip() or "-"
        except OSError:
            continue
        lines.append(f"  thread {tid} {name!r}: state {state}, waiting in {wchan}")
    return lines


def report(pid):
    """What each thread of the live process `pid` is doing, as text."""
    lines = threads(pid)
    gdb = shutil.which("gdb")
    if gdb:
        try:
            out = subprocess.run([gdb, "-p", str(pid), "-batch", "-ex", "thread apply all bt"],
                                 capture_output=True, text=True, timeout=120)
            lines.append(out.stdout)
        except subprocess.TimeoutExpired:
            lines.append("  (gdb took over 120 s)")
    else:
        lines.append("  (gdb is not installed: no stacks)")
    return "\n".join(lines)


def stop(proc, name, timeout=60, log=None):
    """SIGTERM, then wait up to `timeout` seconds; past that, report (with the last lines of
    the file `log`, if given), kill and raise Stuck."""
    if proc.poll() is not None:
        return proc.returncode
    proc.terminate()
    return wait(proc, name, timeout, after="SIGTERM", log=log)


def wait(proc, name, timeout, after="starting", log=None):
    """Waits up to `timeout` seconds for `proc` to end; past that, report, kill, raise Stuck."""
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pass
    text = report(proc.pid)
    if log:
        try:
            with open(log, errors="replace") as f:
                text += f"\nthe last lines of {log}:\n" + "".join(f.readlines()[-40:])
        except OSError as e:
            text += f"\n(could not read {log}: {e})"
    proc.kill()
    proc.wait()
    message = f"{name} (pid {proc.pid}) had not ended {timeout} s after {after}; its threads:\n{text}"
    print(message, file=sys.stderr, flush=True)
    raise Stuck(message)


def run(args, name, stdin="", timeout=120):
    """Runs a command to its end, like subprocess.run(capture_output=True, text=True); one
    still running after `timeout` seconds is reported, killed, and raises Stuck."""
    proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(stdin, timeout=timeout)
    except subprocess.TimeoutExpired:
        wait(proc, name, 0, after=f"{timeout} s of running")
        raise  # not reached: wait() raised Stuck
    return subprocess.CompletedProcess(args, proc.returncode, out, err)
