# ClosetAI web app with the shipped model baked in, served by gunicorn through the app factory.
# Build: docker build -t closetai .
# Run:   docker run --rm -p 8000:8000 -v closetai-data:/app/instance closetai
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    CLOSETAI_HOST=0.0.0.0

WORKDIR /app
COPY requirements.txt ./
RUN pip install -r requirements.txt gunicorn==23.0.0

COPY closetai/ closetai/
COPY templates/ templates/
COPY static/ static/
COPY models/ models/
COPY app.py pyproject.toml README.md ./
RUN pip install --no-deps . \
    && useradd --create-home --uid 10001 closetai \
    && mkdir -p /app/instance \
    && chown closetai:closetai /app/instance

USER closetai
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request, sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/api/v1/health', timeout=4).status != 200)"]
# One worker process (the model is loaded once per process), threads for concurrent uploads.
CMD ["gunicorn", "--bind", "0.0.0.0:8000", "--workers", "1", "--threads", "4", "--timeout", "120", "app:create_app()"]
