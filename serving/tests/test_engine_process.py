"""EngineProcess.stop() against a process tree shaped like vLLM's: an API server (the group
leader) and its EngineCore child. No engine needed, so it runs everywhere."""

import os
import signal
import subprocess
import sys
import time

from serving.engines import EngineProcess, EngineSpec, group_members, pid_alive


def start_tree(tmp_path) -> tuple[EngineProcess, int]:
    script = tmp_path / "leader.py"
    script.write_text(
        "import subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
        "open(sys.argv[1] + '.tmp', 'w').write(str(child.pid))\n"
        "import os; os.rename(sys.argv[1] + '.tmp', sys.argv[1])\n"
        "time.sleep(600)\n"
    )
    engine = EngineProcess(EngineSpec(name="tree", model_dir="", served_name="", port=1, python=sys.executable,
                                      log_path=tmp_path / "log"))
    engine.process = subprocess.Popen([sys.executable, str(script), str(tmp_path / "child.pid")],
                                      start_new_session=True)
    engine.pgid = engine.process.pid
    deadline = time.monotonic() + 30
    while not (tmp_path / "child.pid").exists():
        assert time.monotonic() < deadline, "the leader never started its child"
        time.sleep(0.1)
    return engine, int((tmp_path / "child.pid").read_text())


def test_stop_kills_the_group_of_an_engine_whose_server_already_died(tmp_path):
    engine, child = start_tree(tmp_path)
    leader = engine.process.pid
    os.kill(leader, signal.SIGKILL)
    engine.process.wait(10)
    assert pid_alive(child) and group_members(leader) == [child]  # what a dead vLLM API server leaves behind
    engine.process = None  # as run_all drops a dead engine before restarting it
    engine.stop()
    assert not pid_alive(child) and not group_members(leader)


def test_stop_of_a_live_engine_takes_its_children_too(tmp_path):
    engine, child = start_tree(tmp_path)
    leader = engine.process.pid
    engine.stop()
    assert engine.process.poll() is not None and not pid_alive(child) and not group_members(leader)
