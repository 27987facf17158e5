"""The in-process runner: worker threads in the web process, fed by a queue of job ids."""

from __future__ import annotations

import logging
import queue
import threading

from closetai.jobs.lifecycle import JobContext, recover_interrupted, run_job

log = logging.getLogger("closetai.jobs.runner")  # one logger name for the job path, as before the split

_WAKE = -1  # not a job id: put on the queue to wake an idle worker so that it sees stop()


class ThreadJobRunner:
    """Worker threads in the web process, fed by a queue of job ids.

    One worker by default: on a 2-core CPU two Mask R-CNN passes at once only thrash, and photo uploads
    share the inference lock with it. Threads start on the first `submit` or an explicit `start`, not at
    import or app creation, so `flask <command>` processes never pick up work they would abandon.
    """

    def __init__(self, ctx: JobContext, workers: int = 1, stale_after_s: float = 60.0,
                 sweep_every_s: float = 15.0):
        if workers < 1:
            raise ValueError("workers must be >= 1")
        self._stop = threading.Event()
        ctx.should_stop = self._stop.is_set
        self.ctx = ctx
        self.workers = workers
        self.stale_after_s = stale_after_s
        self.sweep_every_s = sweep_every_s
        self._queue: queue.Queue[int] = queue.Queue()
        self._threads: list[threading.Thread] = []
        self._start_lock = threading.Lock()

    def start(self) -> None:
        with self._start_lock:
            if self._threads:
                return
            self._stop.clear()
            recover_interrupted(self.ctx.store, self.stale_after_s)
            for job in self.ctx.store.list_jobs(status="queued"):  # left queued by an earlier process
                self._queue.put(job["id"])
            for i in range(self.workers):
                t = threading.Thread(target=self._work, name=f"closetai-job-{i}", daemon=True)
                t.start()
                self._threads.append(t)

    def submit(self, job_id: int) -> None:
        self.start()
        self._queue.put(job_id)

    def stop(self, timeout: float | None = 30.0) -> None:
        """Ask the running job to stop (it is marked failed: SHUTDOWN) and wait for the workers."""
        self._stop.set()
        for _ in self._threads:  # wakes idle workers at once, not at the end of their sweep wait
            self._queue.put(_WAKE)
        for t in self._threads:
            t.join(timeout)
        self._threads = []

    @property
    def running(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    def _work(self) -> None:
        while not self._stop.is_set():
            try:
                job_id = self._queue.get(timeout=self.sweep_every_s)
            except queue.Empty:
                try:  # idle: fail jobs of other processes that died
                    recover_interrupted(self.ctx.store, self.stale_after_s)
                except Exception:
                    log.exception("stale-job sweep failed")
                continue
            if self._stop.is_set():  # a job taken here stays queued in the table: the next start runs it
                break
            if job_id == _WAKE:
                continue
            try:
                run_job(job_id, self.ctx)
            except Exception:  # the store itself failed (disk full, locked): log, keep the worker alive
                log.exception("job %d could not be run", job_id)
