"""bench/eval_tracking.py: the ground-truth matching that scores video counting, and its replay."""

from __future__ import annotations

import sys
from types import SimpleNamespace

import numpy as np
import pytest

from closetai.vision.detections import Detections
from tests.helpers import CCP, REPO, needs_shared

sys.path.insert(0, str(REPO / "bench"))
import eval_tracking  # noqa: E402

NAMES = ("top", "bag")


def frame(i, boxes, tids, labels=None):
    d = Detections(np.array(boxes, np.float32).reshape(-1, 4), [0.9] * len(tids), labels or [1] * len(tids), NAMES,
                   track_ids=np.array(tids, np.int64))
    return SimpleNamespace(source_index=i, detections=d)


A, B, C = [10, 10, 50, 60], [60, 10, 90, 40], [0, 70, 20, 95]


def test_each_garment_owned_once_duplicates_false_and_marginal_tracks():
    # A (top) and B (bag) well in view for 5 frames; C (bag) only 2 frames: not expected, not false.
    truth = eval_tracking.Truth({"p/0": "top", "p/1": "bag", "p/2": "bag"},
                                [[("p/0", np.array(A), 1.0), ("p/1", np.array(B), 0.9)]
                                 + ([("p/2", np.array(C), 0.8)] if i < 2 else []) for i in range(5)])
    assert truth.expected() == {"p/0", "p/1"}
    frames = [frame(i, [A, B if i < 2 else [61, 11, 91, 41], [100, 100, 120, 120]] + ([C] if i < 2 else []),
                    [1, 2 if i < 2 else 3, 4] + ([5] if i < 2 else []), [1, 2, 2] + ([2] if i < 2 else []))
              for i in range(5)]
    tracks = [SimpleNamespace(track_id=1, label="top", frames_seen=5), SimpleNamespace(track_id=2, label="top", frames_seen=2),
              SimpleNamespace(track_id=3, label="bag", frames_seen=3), SimpleNamespace(track_id=4, label="bag", frames_seen=5),
              SimpleNamespace(track_id=5, label="bag", frames_seen=2)]
    r = eval_tracking.score_tracks(SimpleNamespace(frames=frames, tracks=tracks), truth)
    assert r["garments"] == 2 and r["tracks"] == 5
    assert r["counted_once"] == 0.5  # A once; B twice (tracks 2 and 3)
    assert r["found"] == 1.0 and r["duplicates"] == 1
    assert r["false"] == 1  # track 4 matches nothing; track 5 (on the barely seen C) is not false
    assert r["right_class"] == pytest.approx(3 / 4)  # track 2 says top on a bag
    assert r["found_by_class"] == {"bag": [1, 1], "top": [1, 1]}
    assert r["false_by_label"] == {"bag": 1}


def test_a_track_mostly_off_its_garment_belongs_to_none():
    truth = eval_tracking.Truth({"p/0": "top"}, [[("p/0", np.array(A), 1.0)] for _ in range(4)])
    frames = [frame(i, [A if i == 0 else [200, 200, 240, 250]], [1]) for i in range(4)]
    r = eval_tracking.score_tracks(SimpleNamespace(frames=frames, tracks=[SimpleNamespace(track_id=1, label="top",
                                                                                          frames_seen=4)]), truth)
    assert (r["found"], r["false"]) == (0.0, 1)


def test_replay_hands_back_what_was_recorded_with_a_higher_threshold():
    class Fake:
        min_score, class_names, info, device, embed = 0.5, NAMES, {"name": "f"}, "cpu", True

        def __init__(self):
            self.calls = 0

        def predict_batch(self, frames, min_score=None, **kwargs):
            self.calls += 1
            m = np.ones((2, 4, 4), bool)
            return [Detections([[0, 0, 2, 2], [1, 1, 3, 3]], [0.3, 0.8], [1, 2], NAMES, masks=m) for _ in frames]

    fake = Fake()
    replay = eval_tracking.Replay(fake)
    first = replay.predict_batch([0, 1], min_score=0.1)
    assert all(d.masks is None for d in first)  # embeddings stay: the tracker may use them after cuts
    again = replay.replay().predict_batch([0, 1], min_score=0.5)
    assert fake.calls == 1 and [d.scores.tolist() for d in again] == [[pytest.approx(0.8)]] * 2


@needs_shared
def test_clip_ground_truth_follows_the_moving_crop(tmp_path):
    """The truth boxes of a garment move with the camera, and the written clip has one frame per entry."""
    from closetai.media.video import probe_video
    from closetai.training.data.ccp import CCPDataset

    photo = f"{CCPDataset(CCP).ids[0]}.jpg"
    truth = eval_tracking.make_clip(CCP, [photo], tmp_path / "c.mp4", shot_s=2, seed=3)
    assert len(truth.frames) == 10 and probe_video(tmp_path / "c.mp4").frame_count == 10
    key = next(iter(truth.expected()))
    boxes = [b for f in truth.frames for k, b, _s in f if k == key]
    assert len(boxes) >= 3 and all(0 <= b[0] < b[2] <= eval_tracking.FRAME_W and b[3] <= eval_tracking.FRAME_H
                                   for b in boxes)
    assert not np.allclose(boxes[0], boxes[-1], atol=2)  # the camera moved
