"""The run-directory lock: a second trainer is refused, naming the holder; a killed holder leaves no lock behind."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys

import pytest

from acan_tf.training.run_lock import RunLock, RunLockedError, read_holder
from tests.tiny_runs import REPO

# A second process: takes the lock at argv[1], says so, then waits for stdin to close (or for SIGKILL).
HOLD = """
import sys
from acan_tf.training.run_lock import RunLock, RunLockedError
try:
    lock = RunLock(sys.argv[1]).acquire()
except RunLockedError as error:
    print(error, flush=True)
    sys.exit(3)
print("locked", flush=True)
sys.stdin.read()
"""


def start_holder(lock_path: str) -> subprocess.Popen:
    """A subprocess trying to take the lock at `lock_path`."""
    return subprocess.Popen([sys.executable, "-c", HOLD, lock_path], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONPATH": REPO})


def test_second_process_is_refused_naming_the_holder_and_leaves_the_file_unchanged(tmp_path):
    lock_path = str(tmp_path / "run.lock")
    with RunLock(lock_path):
        before = open(lock_path, "rb").read()
        with start_holder(lock_path) as second:
            output, _ = second.communicate(timeout=30)
        assert second.returncode == 3
        assert output.count("\n") == 1  # one line
        assert str(tmp_path) in output and f"pid {os.getpid()} on {socket.gethostname()}" in output
        assert open(lock_path, "rb").read() == before
    assert read_holder(lock_path) is None  # a clean release erases the record


def test_second_lock_in_the_same_process_is_refused(tmp_path):
    lock_path = str(tmp_path / "run.lock")
    with RunLock(lock_path) as first:
        holder = read_holder(lock_path)
        assert (holder.pid, holder.host) == (os.getpid(), socket.gethostname())
        with pytest.raises(RunLockedError, match=f"pid {os.getpid()} on "):
            RunLock(lock_path).acquire()
        assert first.held
    with RunLock(lock_path) as again:  # released: free to take
        assert again.held


def test_lock_of_a_killed_holder_can_be_taken(tmp_path):
    lock_path = str(tmp_path / "run.lock")
    holder = start_holder(lock_path)
    try:
        assert holder.stdout.readline() == "locked\n"
        assert read_holder(lock_path).pid == holder.pid
        with pytest.raises(RunLockedError, match=f"pid {holder.pid} on {socket.gethostname()}"):
            RunLock(lock_path).acquire()
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    finally:
        holder.kill()
        holder.communicate()
    assert read_holder(lock_path).pid == holder.pid  # the killed holder's record stays; its lock does not
    with RunLock(lock_path):
        assert read_holder(lock_path).pid == os.getpid()


def test_lock_file_in_a_missing_folder_is_an_os_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        RunLock(str(tmp_path / "absent" / "run.lock")).acquire()
