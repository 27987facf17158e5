# ClosetAI: the web app (`python app.py`: waitress) and the `closetai` CLI and Celery worker, with the
# shipped model baked in. docker-compose.yml runs it scaled out; scripts/docker-smoke.sh builds and tests it.
#
#   CPU image (default):  docker build -t closetai .
#   GPU image:            docker build --build-arg FLAVOUR=gpu \
#                           --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu130 -t closetai:gpu .
#   Run:                  docker run --rm --init -p 127.0.0.1:8000:8000 -v closetai-data:/app/instance closetai
#
# Build arguments:
#   BASE         base of the CPU image
#   CUDA_BASE    base of the GPU image: an NVIDIA CUDA runtime image (run it with --gpus all)
#   FLAVOUR      cpu | gpu
#   TORCH_INDEX  the package index torch and torchvision come from, at the versions requirements.txt pins.
#                The default, PyTorch's CPU wheels, carries no CUDA libraries: PyPI's torch is the CUDA
#                build and brings ~3 GB of NVIDIA wheels with it.
# Behind a proxy that re-signs HTTPS, `--secret id=ca,src=/path/to/ca-bundle.crt` gives pip that CA bundle
# for the build only: a build secret is never stored in a layer.
ARG BASE=python:3.11-slim
ARG CUDA_BASE=nvidia/cuda:13.0.1-runtime-ubuntu24.04
ARG FLAVOUR=cpu

FROM ${BASE} AS python-cpu

FROM ${CUDA_BASE} AS python-gpu
# The CUDA images have no Python; Ubuntu 24.04's python3 is 3.12 (the project needs >= 3.11).
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
    && rm -rf /var/lib/apt/lists/*

FROM python-${FLAVOUR}
ARG FLAVOUR
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
# PYTHONPATH: app.py and the `closetai` command import the code in /app, whose package-relative default
# paths (models/closetai-ccp15.pt, instance/) then point into /app. A pip-installed copy in site-packages
# would look for the model there.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app
WORKDIR /app
RUN useradd --create-home --uid 10001 closetai

# Dependencies before the code: this layer (the slow one) is rebuilt only when requirements.txt changes.
# torch and torchvision first, from TORCH_INDEX; the rest from PyPI, which then finds torch satisfied.
COPY requirements.txt ./
RUN --mount=type=secret,id=ca --mount=type=cache,target=/root/.cache/pip \
    set -eu; \
    if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi; \
    case "$FLAVOUR:$TORCH_INDEX" in \
      gpu:*/whl/cpu*) echo "FLAVOUR=gpu needs a CUDA build of torch: --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu130" >&2; exit 1;; \
    esac; \
    python3 -m venv /opt/venv; \
    pip install --index-url "$TORCH_INDEX" $(grep -E '^torch(vision)?==' requirements.txt | cut -d' ' -f1); \
    pip install -r requirements.txt; \
    python -c "import sys, torch, torchvision; \
print('torch', torch.__version__, 'torchvision', torchvision.__version__, 'CUDA', torch.version.cuda); \
cpu_index = '/whl/cpu' in sys.argv[1]; \
sys.exit('a CUDA torch replaced the CPU one' if cpu_index and torch.version.cuda else 0)" "$TORCH_INDEX"

# `closetai ...` (the CLI, `closetai worker`): the project's console script, run from /app's code.
RUN printf '#!/bin/sh\nexec python -m closetai "$@"\n' > /opt/venv/bin/closetai \
    && chmod 755 /opt/venv/bin/closetai \
    && mkdir -p /app/instance \
    && chown closetai:closetai /app/instance
COPY models/ models/
COPY templates/ templates/
COPY static/ static/
COPY scripts/docker-healthcheck.py scripts/
COPY app.py pyproject.toml ./
COPY closetai/ closetai/

# The server listens on all interfaces inside the container; which host names it answers is
# CLOSETAI_ALLOWED_HOSTS (default: the loopback names, i.e. a port published on 127.0.0.1).
ENV CLOSETAI_HOST=0.0.0.0 \
    CLOSETAI_PORT=8000 \
    CLOSETAI_INSTANCE=/app/instance
USER closetai
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=10s --start-period=180s --retries=3 \
    CMD ["python", "/app/scripts/docker-healthcheck.py", "web"]
# waitress (closetai.web.server): four request threads, one model; SIGTERM (docker stop) shuts down cleanly.
CMD ["python", "app.py"]
