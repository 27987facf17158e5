"""The one object that talks to the database (SQLAlchemy Core) and owns the media folder beside it.

`Store` is a facade: the web app, the job workers and the CLI share one Store per process, so it stays
one class, while each concern lives in its own module of closetai.storage and is mixed in here:
  schema.py          the tables (analyses, detections, tracks, jobs, embeddings) and utcnow
  engine.py          engine, SQLite pragmas, migrations, temp paths and leftovers (StoreBase), store_from_env
  records.py         NewAnalysis / NewDetection / NewTrack, what callers hand the store
  errors.py          NotFound, AlreadyStored, JobNotRunning, StoreError
  analyses.py        add, delete and read analyses with their media files, detections and tracks
  report_queries.py  the trend report's SQL
  embeddings.py      vectors for similar items and their blob encoding
  jobqueue.py        the jobs table as a queue
Everything callers imported from this module before the split is re-exported here.
"""

from __future__ import annotations

from closetai.storage.analyses import _FILE_NAMES, AnalysisStore, _labels_by_analysis
from closetai.storage.embeddings import EmbeddingStore, _insert_embeddings, from_blob, to_blob
from closetai.storage.engine import (
    _HOST,
    _PRE_MIGRATION_REVISION,
    MIGRATIONS,
    StoreBase,
    _owner_gone,
    _sqlite_pragmas,
    default_sqlite_url,
    log,
    migrate,
    pid_alive,
    store_from_env,
)
from closetai.storage.errors import AlreadyStored, JobNotRunning, NotFound, StoreError
from closetai.storage.jobqueue import JobQueue
from closetai.storage.records import NewAnalysis, NewDetection, NewTrack, _detection_dict
from closetai.storage.report_queries import _LABEL_END, ReportQueries, _analysis_filters, _counted_garments
from closetai.storage.schema import (
    JOB_STATUSES,
    analyses,
    detections,
    embeddings,
    jobs,
    metadata,
    tracks,
    utcnow,
)

__all__ = [
    "JOB_STATUSES", "MIGRATIONS", "AlreadyStored", "JobNotRunning", "NewAnalysis", "NewDetection", "NewTrack",
    "NotFound", "Store", "StoreBase", "StoreError", "analyses", "default_sqlite_url", "detections", "embeddings",
    "from_blob", "jobs", "log", "metadata", "migrate", "pid_alive", "store_from_env", "to_blob", "tracks", "utcnow",
    # module-level helpers of the store before the split, for anything that still reaches for them
    "_FILE_NAMES", "_HOST", "_LABEL_END", "_PRE_MIGRATION_REVISION", "_analysis_filters", "_counted_garments",
    "_detection_dict", "_insert_embeddings", "_labels_by_analysis", "_owner_gone", "_sqlite_pragmas",
]


class Store(AnalysisStore, ReportQueries, EmbeddingStore, JobQueue):
    """Database + media folder. Create once per process; safe to share between threads."""
