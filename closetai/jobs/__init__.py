"""Background jobs: the queue lifecycle and thread runner (runner), Celery workers (worker)."""
