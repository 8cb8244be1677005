"""Child processes of the benchmark: each in its own process group, all ended on exit.

Every process the harness starts goes through `start`, which puts it in a new session (its own
process group) and records it; `stop` ends one group (SIGTERM, then SIGKILL after a grace
period) and `stop_all` ends every group still recorded. `install_handlers` makes Ctrl-C,
SIGTERM and SIGHUP unwind through the caller's `finally`, and `atexit` calls `stop_all` too.
Output goes to a log file, never to a pipe nobody reads (a full pipe would stall the child).
"""

import atexit
import os
import re
import signal
import socket
import subprocess
import time

_live = []  # Popen objects whose groups may still be running


def start(cmd, log_path, env=None, cwd=None):
    """Starts `cmd` in its own process group with stdout+stderr to `log_path`; returns the Popen."""
    log = open(log_path, "wb")
    try:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
    finally:
        log.close()
    proc.log_path = log_path
    _live.append(proc)
    return proc


def stop(proc, grace=3.0):
    """Ends the process group of `proc`: SIGTERM, wait up to `grace` seconds, then SIGKILL."""
    if proc is None:
        return
    try:
        pgid = os.getpgid(proc.pid)
    except ProcessLookupError:
        pgid = None
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if pgid is not None and pgid == proc.pid:  # only ever the group we created
            try:
                os.killpg(pgid, sig)
            except ProcessLookupError:
                pass
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
    if proc in _live:
        _live.remove(proc)


def stop_all():
    """Ends every process group started here and not yet stopped, newest first."""
    for proc in list(reversed(_live)):
        stop(proc, grace=2.0)


def _raise_interrupt(signum, _frame):
    raise KeyboardInterrupt(f"signal {signum}")


def install_handlers():
    """Ctrl-C, SIGTERM and SIGHUP unwind as KeyboardInterrupt; exit stops every child group."""
    atexit.register(stop_all)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _raise_interrupt)


def log_tail(proc_or_path, lines=15):
    """The last `lines` lines of a child's log, for error messages."""
    path = getattr(proc_or_path, "log_path", proc_or_path)
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 8192))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def wait_for_listening(proc, timeout, pattern=r"LISTENING (http://127\.0\.0\.1:\d+)"):
    """Polls the child's log for `LISTENING http://127.0.0.1:PORT`; returns the URL.

    Raises RuntimeError with the log's tail if the child exits or `timeout` seconds pass.
    """
    deadline = time.monotonic() + timeout
    rx = re.compile(pattern)
    while time.monotonic() < deadline:
        try:
            with open(proc.log_path, "r", encoding="utf-8", errors="replace") as f:
                m = rx.search(f.read(65536))
            if m:
                return m.group(1)
        except OSError:
            pass
        if proc.poll() is not None:
            raise RuntimeError(f"exited with {proc.returncode} before listening:\n{log_tail(proc)}")
        time.sleep(0.05)
    raise RuntimeError(f"not listening after {timeout:.0f} s:\n{log_tail(proc)}")


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def group_cpu_seconds(pgid):
    """utime+stime, in seconds, summed over the live processes of process group `pgid`."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in _group_pids(pgid):
        fields = _stat_fields(pid)
        if fields:
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return total / tick


def group_rss_bytes(pgid):
    """Resident memory, in bytes, summed over the live processes of process group `pgid`."""
    total = 0
    for pid in _group_pids(pgid):
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
        except OSError:
            pass
    return total


def _stat_fields(pid):
    """Fields of /proc/PID/stat after the command name (field 3 onwards), or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
    except OSError:
        return None
    return data[data.rfind(")") + 2:].split()


def _group_pids(pgid):
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(int(entry))
            if fields and int(fields[2]) == pgid:  # field 5: pgrp
                pids.append(int(entry))
    return pids
