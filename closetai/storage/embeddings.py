"""Appearance vectors for similar items: their blob encoding and the queries that feed
closetai.insights.similar's in-memory index."""

from __future__ import annotations

from typing import Any

import numpy as np
from sqlalchemy import func, literal, select, union_all
from sqlalchemy.engine import Connection

from closetai.storage.engine import StoreBase
from closetai.storage.errors import NotFound
from closetai.storage.records import NewDetection, NewTrack, _detection_dict
from closetai.storage.schema import analyses, detections, embeddings, tracks


# The blob encoding lives here, not in closetai.vision.embed: that module imports torch, and the database layer
# must not (an import inside a write transaction held SQLite's lock for seconds).
def to_blob(vector: np.ndarray) -> bytes:
    """float16 little-endian bytes: half the space of float32; cosine scores move by < 1e-3."""
    return np.asarray(vector, dtype="<f2").tobytes()


def from_blob(blob: bytes, dim: int) -> np.ndarray:
    v = np.frombuffer(blob, dtype="<f2")
    if v.size != dim:
        raise ValueError(f"embedding blob holds {v.size} values, expected {dim}")
    return v.astype(np.float32)


def _insert_embeddings(conn: Connection, analysis_id: int, model: str, dets: list[NewDetection],
                       trks: list[NewTrack], track_ids: dict[int, int]) -> None:
    """Embedding rows for the photo detections and tracks of a new analysis that carry a vector."""
    if not any(d.embedding is not None for d in dets) and not any(t.embedding is not None for t in trks):
        return
    det_ids = dict(conn.execute(select(detections.c.idx, detections.c.id)
                                .where(detections.c.analysis_id == analysis_id)).all())
    rows = [{"analysis_id": analysis_id, "detection_id": det_ids[i], "track_id": None, "label": d.label,
             "model": model, "dim": len(d.embedding), "vector": to_blob(d.embedding)}
            for i, d in enumerate(dets) if d.embedding is not None and d.track_no is None]
    rows += [{"analysis_id": analysis_id, "detection_id": None, "track_id": track_ids[t.track_no], "label": t.label,
              "model": model, "dim": len(t.embedding), "vector": to_blob(t.embedding)}
             for t in trks if t.embedding is not None]
    if rows:
        conn.execute(embeddings.insert(), rows)


class EmbeddingStore(StoreBase):
    """Reading and (re)writing the embeddings table."""

    # -- similar items (closetai.insights.similar keeps the vectors in memory; these feed it) ------------------
    def embedding_state(self, model: str) -> tuple[int, int]:
        """(rows made by `model`, max id of all rows): the in-memory index reloads when either moves
        (a reindex rewrites rows in place, which raises the first)."""
        with self.engine.connect() as conn:
            n = conn.execute(select(func.count()).where(embeddings.c.model == model)).scalar_one()
            top = conn.execute(select(func.max(embeddings.c.id))).scalar_one()
        return int(n), int(top or 0)

    def load_embeddings(self, after_id: int = 0, model: str | None = None) -> dict[str, Any]:
        """Rows with id > after_id, in id order: {"ids", "analysis_ids", "labels", "vectors" (N, D) float32}.
        Rows of another dimension than the first are skipped (a half-finished reindex to a new size)."""

        query = (select(embeddings.c.id, embeddings.c.analysis_id, embeddings.c.label, embeddings.c.dim,
                        embeddings.c.vector).where(embeddings.c.id > after_id).order_by(embeddings.c.id))
        if model:
            query = query.where(embeddings.c.model == model)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        dim = rows[0][3] if rows else 0
        rows = [r for r in rows if r[3] == dim]
        vectors = (np.frombuffer(b"".join(r[4] for r in rows), dtype="<f2").reshape(len(rows), dim)
                   .astype(np.float32) if rows else np.zeros((0, 0), np.float32))
        return {"ids": np.array([r[0] for r in rows], dtype=np.int64),
                "analysis_ids": np.array([r[1] for r in rows], dtype=np.int64),
                "labels": [r[2] for r in rows], "vectors": vectors}

    def get_items(self, item_ids: list[int]) -> list[dict[str, Any]]:
        """Garments by item (embedding row) id, in the order asked, unknown ids left out. Each: id, kind
        ('photo' | 'video'), analysis_id, label, score, colour_name, colour_hex, crop_path, filename,
        source, idx (photo detection) or track_no and time_s (the video moment of its best view)."""
        if not item_ids:
            return []
        e, d, t, a = embeddings.c, detections.c, tracks.c, analyses.c
        best_time = (select(d.time_s).where(d.track_id == t.id).order_by(d.score.desc()).limit(1)
                     .scalar_subquery())
        photo_q = (select(e.id, e.analysis_id, e.label, literal("photo").label("kind"), d.score,
                          d.colour_name, d.colour_hex, d.crop_path, d.idx, literal(None).label("track_no"),
                          literal(None).label("time_s"), a.filename, a.source)
                   .select_from(embeddings.join(detections, d.id == e.detection_id).join(analyses, a.id == e.analysis_id))
                   .where(e.id.in_(item_ids)))
        video_q = (select(e.id, e.analysis_id, e.label, literal("video").label("kind"),
                          t.best_score.label("score"), t.colour_name, t.colour_hex, t.crop_path,
                          literal(None).label("idx"), t.track_no, best_time.label("time_s"), a.filename, a.source)
                   .select_from(embeddings.join(tracks, t.id == e.track_id).join(analyses, a.id == e.analysis_id))
                   .where(e.id.in_(item_ids)))
        with self.engine.connect() as conn:
            rows = {r["id"]: dict(r) for r in conn.execute(union_all(photo_q, video_q)).mappings()}
        return [rows[i] for i in item_ids if i in rows]

    def get_item(self, item_id: int) -> dict[str, Any]:
        found = self.get_items([item_id])
        if not found:
            raise NotFound(f"item {item_id} not found")
        return found[0]

    def items_of_analysis(self, analysis_id: int) -> dict[str, dict[int, int]]:
        """{"detections": {idx: item id}, "tracks": {track_no: item id}} of one analysis."""
        e = embeddings.c
        with self.engine.connect() as conn:
            dets = conn.execute(select(detections.c.idx, e.id).select_from(
                embeddings.join(detections, detections.c.id == e.detection_id)).where(e.analysis_id == analysis_id)).all()
            trks = conn.execute(select(tracks.c.track_no, e.id).select_from(
                embeddings.join(tracks, tracks.c.id == e.track_id)).where(e.analysis_id == analysis_id)).all()
        return {"detections": dict(dets), "tracks": dict(trks)}

    def garments_to_embed(self, model: str | None = None) -> dict[int, dict[str, list[dict[str, Any]]]]:
        """Garments without an embedding made by `model` (None: every garment), grouped by analysis:
        {analysis_id: {"detections": [detection rows of a photo], "tracks": [track rows]}}."""
        e = embeddings.c
        fresh = select(e.detection_id).where(e.detection_id.is_not(None))
        fresh_t = select(e.track_id).where(e.track_id.is_not(None))
        if model is not None:
            fresh, fresh_t = fresh.where(e.model == model), fresh_t.where(e.model == model)
        else:
            fresh, fresh_t = fresh.where(literal(False)), fresh_t.where(literal(False))
        photo_dets = (select(detections).join(analyses, analyses.c.id == detections.c.analysis_id)
                      .where(analyses.c.kind == "photo", detections.c.id.not_in(fresh))
                      .order_by(detections.c.analysis_id, detections.c.idx))
        video_trks = select(tracks).where(tracks.c.id.not_in(fresh_t)).order_by(tracks.c.analysis_id, tracks.c.track_no)
        out: dict[int, dict[str, list[dict[str, Any]]]] = {}
        with self.engine.connect() as conn:
            for r in conn.execute(photo_dets).mappings():
                out.setdefault(r["analysis_id"], {"detections": [], "tracks": []})["detections"].append(_detection_dict(r))
            for r in conn.execute(video_trks).mappings():
                out.setdefault(r["analysis_id"], {"detections": [], "tracks": []})["tracks"].append(dict(r))
        return dict(sorted(out.items()))

    def best_view(self, track_id: int) -> dict[str, Any] | None:
        """The track's highest-score detection row (its crop is that sighting's box)."""
        with self.engine.connect() as conn:
            row = conn.execute(select(detections).where(detections.c.track_id == track_id)
                               .order_by(detections.c.score.desc(), detections.c.id).limit(1)).mappings().first()
        return _detection_dict(row) if row else None

    def put_embeddings(self, analysis_id: int, model: str, rows: list[dict[str, Any]]) -> int:
        """Insert or replace embeddings (reindex). rows: {"detection_id" or "track_id", "label", "vector"}.
        A replaced row keeps its id, so item links stay valid. Returns the rows written."""

        with self._begin() as conn:
            for r in rows:
                key = embeddings.c.detection_id if r.get("detection_id") is not None else embeddings.c.track_id
                value = r.get("detection_id") if r.get("detection_id") is not None else r["track_id"]
                fields = {"model": model, "dim": len(r["vector"]), "vector": to_blob(r["vector"]), "label": r["label"]}
                if conn.execute(embeddings.update().where(key == value).values(**fields)).rowcount == 0:
                    conn.execute(embeddings.insert().values(
                        analysis_id=analysis_id, detection_id=r.get("detection_id"), track_id=r.get("track_id"),
                        **fields))
        return len(rows)
