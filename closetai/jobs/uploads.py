"""Uploads as a job's working material under media_root/uploads/<token>/: saved before the job is
queued, removed when it ends whatever the outcome."""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from typing import Any

from closetai.storage.store import Store


def save_upload(store: Store, stream, filename: str) -> Path:
    """Write an uploaded clip under media_root/uploads/<token>/ (temp name, then rename): a killed process
    leaves at most a .tmp folder, which Store.sweep_leftovers clears."""
    suffix = Path(filename).suffix.lower()
    suffix = suffix if suffix[1:].isalnum() and len(suffix) <= 6 else ".bin"
    token = uuid.uuid4().hex
    tmp = store.tmp_path("upload-")
    final = store.media_root / "uploads" / token
    tmp.mkdir(parents=True)
    try:
        with open(tmp / f"clip{suffix}", "wb") as out:
            shutil.copyfileobj(stream, out, 1 << 20)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final / f"clip{suffix}"


def _remove_upload(store: Store, params: dict[str, Any]) -> None:
    """The upload is working material: the stored analysis keeps the annotated video, the hash and the
    name. Deleting it on every outcome is what leaves nothing behind after a failure."""
    rel = params.get("upload")
    if not rel:
        return
    path = (store.media_root / rel).resolve()
    if path.is_relative_to(store.media_root / "uploads"):
        shutil.rmtree(path.parent, ignore_errors=True)
