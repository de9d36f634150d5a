"""`make run`'s supervision pieces, each against the real thing where it is a process or a file:
the restart rules (``config.supervision``, pure), the log rotation (``config.processes.rotate_log``,
on real files), and the process-group guard (``config.processes.GroupGuard``, real processes)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from config.processes import GroupGuard, rotate_log
from config.supervision import after_exit
from serving.engines import die_with_parent, group_members, pid_alive
from tests import helpers
from tests.faults import start_own_redis


def wait_until(condition, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


class TestRestartRules:
    def test_a_child_that_dies_young_waits_longer_each_time_then_is_given_up(self):
        waits, failures, now = [], 0, 1000.0
        for _ in range(5):
            decision = after_exit(failures, ran_s=3.0, now=now)
            waits.append(decision.retry_at - now)
            failures = decision.failures
        # By hand: 5 s, then doubled each time; the fifth exit in a row is the last.
        assert waits == [5.0, 10.0, 20.0, 40.0, 80.0]
        assert decision.failures == 5 and decision.give_up
        assert not after_exit(3, ran_s=3.0, now=now).give_up

    def test_a_child_that_ran_five_minutes_starts_its_count_afresh(self):
        decision = after_exit(4, ran_s=300.0, now=50.0)
        assert (decision.failures, decision.retry_at, decision.give_up) == (1, 55.0, False)

    def test_the_wait_is_capped_at_five_minutes(self):
        assert after_exit(20, ran_s=0.0, now=0.0, max_failures=100).retry_at == 300.0


class TestLogRotation:
    def test_a_log_over_the_cap_is_copied_and_emptied_and_the_writer_goes_on_at_its_start(self, tmp_path):
        path = tmp_path / "worker.log"
        writer = open(path, "ab")  # noqa: SIM115 - a child's append-mode stdout
        writer.write(b"x" * 300)
        writer.flush()
        assert not rotate_log(path, max_bytes=300, backups=2)  # at the cap, not over it
        writer.write(b"y")
        writer.flush()
        assert rotate_log(path, max_bytes=300, backups=2)
        assert (tmp_path / "worker.log.1").read_bytes() == b"x" * 300 + b"y"
        writer.write(b"after\n")
        writer.close()
        assert path.read_bytes() == b"after\n"  # no hole of 301 NUL bytes: append mode

    def test_only_the_newest_copies_are_kept(self, tmp_path):
        path = tmp_path / "web.log"
        for round_ in "abcd":
            path.write_bytes(round_.encode() * 10)
            assert rotate_log(path, max_bytes=5, backups=2)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["web.log", "web.log.1", "web.log.2"]
        assert (tmp_path / "web.log.1").read_bytes() == b"d" * 10
        assert (tmp_path / "web.log.2").read_bytes() == b"c" * 10

    def test_a_cap_of_zero_never_rotates_and_a_missing_file_is_no_error(self, tmp_path):
        path = tmp_path / "engine.log"
        assert not rotate_log(path, max_bytes=10, backups=1)
        path.write_bytes(b"z" * 100)
        assert not rotate_log(path, max_bytes=0, backups=1)
        assert path.stat().st_size == 100


GROUP_WITH_A_GRANDCHILD = "import subprocess, time; subprocess.Popen(['sleep', '300']); time.sleep(300)"


def start_group() -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, "-c", GROUP_WITH_A_GRANDCHILD], start_new_session=True)
    assert wait_until(lambda: len(group_members(process.pid)) == 2)
    return process


class TestGroupGuard:
    def test_closing_the_guard_stops_every_watched_group_grandchildren_included(self):
        guard = GroupGuard()
        watched, unwatched = start_group(), start_group()
        try:
            guard.watch(watched.pid)
            guard.close()
            assert wait_until(lambda: not group_members(watched.pid), 15)
            assert len(group_members(unwatched.pid)) == 2  # only what it was told about
        finally:
            os.killpg(unwatched.pid, signal.SIGKILL)
            for process in (watched, unwatched):
                process.wait(10)

    def test_a_forgotten_group_is_left_alone(self):
        guard = GroupGuard()
        group = start_group()
        try:
            guard.watch(group.pid)
            guard.forget(group.pid)
            guard.close()
            assert len(group_members(group.pid)) == 2
        finally:
            os.killpg(group.pid, signal.SIGKILL)
            group.wait(10)

    def test_an_owner_killed_with_sigkill_takes_its_groups_and_its_pdeathsig_child_along(self, tmp_path):
        """A stand-in for run_all: it starts a guard and a group, then is SIGKILLed."""
        owner_code = (
            "import subprocess, sys, time\n"
            "from config.processes import GroupGuard\n"
            "from serving.engines import die_with_parent\n"
            "guard = GroupGuard()\n"
            f"child = subprocess.Popen([sys.executable, '-c', {GROUP_WITH_A_GRANDCHILD!r}], start_new_session=True,\n"
            "                         preexec_fn=die_with_parent)\n"
            "guard.watch(child.pid)\n"
            "print(child.pid, guard.process.pid, flush=True)\n"
            "time.sleep(300)\n"
        )
        owner = subprocess.Popen([sys.executable, "-c", owner_code], stdout=subprocess.PIPE, text=True,
                                 cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        child_pid, guard_pid = map(int, owner.stdout.readline().split())
        assert wait_until(lambda: len(group_members(child_pid)) == 2)
        owner.kill()
        owner.wait(10)
        assert wait_until(lambda: not group_members(child_pid), 15), "the owner's group outlived it"
        assert wait_until(lambda: not pid_alive(guard_pid), 15), "the guard outlived its work"

    def test_die_with_parent_kills_a_child_when_its_parent_is_sigkilled(self):
        parent_code = (
            "import subprocess, time\n"
            "from serving.engines import die_with_parent\n"
            "child = subprocess.Popen(['sleep', '300'], preexec_fn=die_with_parent)\n"
            "print(child.pid, flush=True)\n"
            "time.sleep(300)\n"
        )
        parent = subprocess.Popen([sys.executable, "-c", parent_code], stdout=subprocess.PIPE, text=True,
                                  cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        child_pid = int(parent.stdout.readline())
        assert pid_alive(child_pid)
        parent.kill()
        parent.wait(10)
        assert wait_until(lambda: not pid_alive(child_pid), 10)
        assert die_with_parent() is None  # callable in any process (it sets the flag on this one here)


class TestMissingRedisServer:
    """A fault test's own Redis that cannot start is a missing real part: skipped here, failed in CI."""

    def test_a_missing_redis_server_skips_by_default_and_fails_when_real_parts_are_required(self, tmp_path, monkeypatch):
        monkeypatch.setenv("PATH", str(tmp_path))  # no redis-server on it
        monkeypatch.setattr(helpers, "REQUIRE_REAL", False)
        with pytest.raises(pytest.skip.Exception, match="redis-server is not installed"):
            start_own_redis(tmp_path)
        monkeypatch.setattr(helpers, "REQUIRE_REAL", True)
        with pytest.raises(pytest.fail.Exception, match="required real part missing: .*redis-server"):
            start_own_redis(tmp_path)
