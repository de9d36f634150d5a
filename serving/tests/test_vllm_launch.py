"""Pure tests of serving/vllm_launch.py (no Django, no torch, no vllm).

    .venv/bin/pytest serving/tests/test_vllm_launch.py -p no:django
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from serving import vllm_launch
from serving.vllm_launch import build_vllm_command, cpu_thread_env, venv_of

MODEL = "/data/models/smollm2-135m-instruct"


def flag(argv: list[str], name: str) -> str:
    """Value following `name` in argv (asserting it occurs exactly once)."""
    assert argv.count(name) == 1, (name, argv)
    return argv[argv.index(name) + 1]


@pytest.fixture
def fake_venv(tmp_path: Path) -> Path:
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "python").write_text("")
    (tmp_path / "lib").mkdir()
    return tmp_path


def cpu(**kw):
    base = dict(python="/venv/bin/python", model_dir=MODEL, served_name="smollm2", port=8101)
    base.update(kw)
    return build_vllm_command(**base)


# ----------------------------------------------------------------------------- CPU
def test_cpu_argv_core_flags():
    argv, _ = cpu()
    assert argv[:3] == ["/venv/bin/python", "-m", "vllm.entrypoints.openai.api_server"]
    assert flag(argv, "--model") == MODEL
    assert flag(argv, "--served-model-name") == "smollm2"
    assert flag(argv, "--host") == "127.0.0.1"
    assert flag(argv, "--port") == "8101"
    assert "--enable-lora" in argv
    assert flag(argv, "--max-lora-rank") == "16"
    assert flag(argv, "--max-loras") == "4"
    assert flag(argv, "--dtype") == "bfloat16"
    assert flag(argv, "--max-model-len") == "2048"
    assert "--chat-template" not in argv
    assert all(isinstance(a, str) for a in argv)


def test_cpu_env():
    _, env = cpu(kv_cache_gib=3)
    assert env["VLLM_CPU_KVCACHE_SPACE"] == "3"
    assert env["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] == "True"
    assert env["HF_HUB_OFFLINE"] == "1"
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in env.items())


def test_cpu_default_threads_are_shareable():
    # default: no pinning, 1 OpenMP thread, single-process (uni) executor
    argv, env = cpu()
    assert env["VLLM_CPU_OMP_THREADS_BIND"] == "nobind"
    assert env["OMP_NUM_THREADS"] == "1"
    assert flag(argv, "--distributed-executor-backend") == "uni"
    assert env["VLLM_ENABLE_V1_MULTIPROCESSING"] == "0"


def test_cpu_omp_threads_override():
    _, env = cpu(omp_threads=2)
    assert env["OMP_NUM_THREADS"] == "2"


def test_cpu_pinning_uses_mp_executor():
    argv, env = cpu(cpus="0-1")
    assert env["VLLM_CPU_OMP_THREADS_BIND"] == "0-1"
    assert "OMP_NUM_THREADS" not in env  # vLLM derives it from the CPU list
    assert "--distributed-executor-backend" not in argv
    assert "VLLM_ENABLE_V1_MULTIPROCESSING" not in env


def test_cpu_thread_env_auto():
    assert cpu_thread_env(cpus="auto") == {"VLLM_CPU_OMP_THREADS_BIND": "auto"}


def test_cpu_thread_env_passive_without_iomp():
    env = cpu_thread_env(1, None, iomp=False)
    assert env["OMP_WAIT_POLICY"] == "PASSIVE" and "KMP_BLOCKTIME" not in env


def test_ld_preload_iomp_when_present(fake_venv: Path, monkeypatch):
    monkeypatch.delenv("LD_PRELOAD", raising=False)
    (fake_venv / "lib" / "libiomp5.so").write_text("")
    _, env = cpu(python=str(fake_venv / "bin" / "python"))
    assert env["LD_PRELOAD"] == str(fake_venv / "lib" / "libiomp5.so")
    assert env["KMP_BLOCKTIME"] == "0"


def test_ld_preload_keeps_existing(fake_venv: Path, monkeypatch):
    monkeypatch.setenv("LD_PRELOAD", "/usr/lib/libtcmalloc.so")
    (fake_venv / "lib" / "libiomp5.so").write_text("")
    _, env = cpu(python=str(fake_venv / "bin" / "python"))
    assert env["LD_PRELOAD"].split() == [str(fake_venv / "lib" / "libiomp5.so"), "/usr/lib/libtcmalloc.so"]


def test_no_ld_preload_without_iomp(fake_venv: Path):
    _, env = cpu(python=str(fake_venv / "bin" / "python"))
    assert "LD_PRELOAD" not in env
    assert env["OMP_WAIT_POLICY"] == "PASSIVE"


def test_chat_template_and_options():
    argv, env = cpu(chat_template="serving/chat_templates/gemma3.jinja", host="0.0.0.0", port=8102,
                    max_model_len=4096, max_lora_rank=32, max_loras=2)
    assert flag(argv, "--chat-template") == "serving/chat_templates/gemma3.jinja"
    assert flag(argv, "--host") == "0.0.0.0"
    assert flag(argv, "--port") == "8102"
    assert flag(argv, "--max-model-len") == "4096"
    assert flag(argv, "--max-lora-rank") == "32"
    assert flag(argv, "--max-loras") == "2"


def test_extra_args_appended_last():
    argv, _ = cpu(extra_args=("--max-num-seqs", 8, "--enable-prefix-caching"))
    assert argv[-3:] == ["--max-num-seqs", "8", "--enable-prefix-caching"]


def test_extra_args_string_rejected():
    with pytest.raises(TypeError):
        cpu(extra_args="--max-num-seqs 8")


def test_relative_model_dir_made_absolute(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    argv, _ = cpu(model_dir="var/models/x")
    assert flag(argv, "--model") == str(tmp_path / "var" / "models" / "x")


@pytest.mark.parametrize("kw", [
    dict(device="tpu"), dict(port=0), dict(port=70000), dict(port="8101"), dict(max_lora_rank=12),
    dict(max_loras=0), dict(kv_cache_gib=0), dict(kv_cache_gib=1.5), dict(max_model_len=0),
])
def test_bad_arguments(kw):
    with pytest.raises(ValueError):
        cpu(**kw)


def test_keyword_only():
    with pytest.raises(TypeError):
        build_vllm_command("/venv/bin/python", MODEL, "x", 8101)  # type: ignore[misc]


# ----------------------------------------------------------------------------- CUDA
def test_cuda_flags_no_cpu_env(fake_venv: Path):
    (fake_venv / "lib" / "libiomp5.so").write_text("")
    argv, env = build_vllm_command(python=str(fake_venv / "bin" / "python"), model_dir=MODEL,
                                   served_name="m", port=9000, device="cuda", kv_cache_gib=1.5)
    assert flag(argv, "--dtype") == "auto"
    assert flag(argv, "--kv-cache-memory-bytes") == str(int(1.5 * 2**30))
    assert "--enable-lora" in argv and flag(argv, "--max-lora-rank") == "16"
    assert "--distributed-executor-backend" not in argv
    assert not [k for k in env if k.startswith(("VLLM_CPU_", "OMP_", "KMP_"))]
    assert "LD_PRELOAD" not in env and "VLLM_ENABLE_V1_MULTIPROCESSING" not in env
    assert env["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] == "True"


# ----------------------------------------------------------------------------- misc
def test_env_is_additions_only():
    _, env = cpu()
    assert "PATH" not in env and len(env) < 20


def test_venv_of():
    assert venv_of("/x/.venv-engine/bin/python") == Path("/x/.venv-engine")


def test_module_is_pure():
    """No Django / torch / vllm imports (the web app imports this module)."""
    src = Path(vllm_launch.__file__).read_text()
    names = set()
    for node in ast.walk(ast.parse(src)):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
    assert not names & {"django", "torch", "vllm", "transformers"}, names
