"""GarmentTracker on hand-built detections: one garment = one track, dropouts and low scores keep it,
a class flip keeps it (majority class), different garments never merge."""

import numpy as np

from closetai.analysis.track import GarmentTracker
from closetai.vision.detections import Detections

NAMES = ("top", "trousers", "bag")


def dets(*items):
    """items: (x1, y1, x2, y2, score, class_id)."""
    if not items:
        return Detections.empty(NAMES)
    a = np.array(items, dtype=np.float32)
    return Detections(a[:, :4], a[:, 4], a[:, 5].astype(int), NAMES)


def test_steady_object_is_one_track():
    tracker = GarmentTracker()
    ids = set()
    for i in range(20):
        out = tracker.update(dets((100 + i, 50, 200 + i, 300, 0.9, 1)))
        assert len(out) == 1
        ids.add(int(out.track_ids[0]))
    assert ids == {1}


def test_dropout_of_one_and_three_frames_keeps_the_track():
    tracker = GarmentTracker()
    seen = []
    frames = [True] * 5 + [False] + [True] * 5 + [False] * 3 + [True] * 3
    for i, present in enumerate(frames):
        out = tracker.update(dets((100 + 3 * i, 50, 200 + 3 * i, 300, 0.9, 1)) if present else dets())
        seen.extend(int(t) for t in out.track_ids)
    assert len(seen) == sum(frames)
    assert set(seen) == {1}


def test_low_score_frame_extends_the_track_and_is_reported():
    tracker = GarmentTracker(high_score=0.5, low_score=0.1)
    tracker.update(dets((10, 10, 110, 210, 0.9, 1)))
    out = tracker.update(dets((12, 10, 112, 210, 0.3, 1)))
    assert out.track_ids.tolist() == [1]
    out = tracker.update(dets((14, 10, 114, 210, 0.8, 1)))
    assert out.track_ids.tolist() == [1]
    assert tracker.tracks[0].hits == 3


def test_low_score_detection_alone_never_starts_a_track():
    tracker = GarmentTracker(high_score=0.5, low_score=0.1)
    assert len(tracker.update(dets((10, 10, 110, 210, 0.3, 1)))) == 0
    assert tracker.tracks == []


def test_two_classes_side_by_side_are_two_tracks():
    tracker = GarmentTracker()
    pairs = set()
    for i in range(10):
        # the top and trousers boxes overlap (same person), the bag sits beside them
        out = tracker.update(dets((100 + 2 * i, 50, 220 + 2 * i, 260, 0.9, 1),
                                  (110 + 2 * i, 230, 210 + 2 * i, 500, 0.85, 2),
                                  (230 + 2 * i, 200, 290 + 2 * i, 300, 0.7, 3)))
        assert len(out) == 3
        pairs.update(zip(out.labels, out.track_ids.tolist(), strict=True))
    assert pairs == {("top", 1), ("trousers", 2), ("bag", 3)}


def test_two_garments_of_one_class_stay_apart():
    tracker = GarmentTracker()
    for i in range(8):
        out = tracker.update(dets((10 + 5 * i, 10, 90 + 5 * i, 200, 0.9, 1), (300 - 5 * i, 10, 380 - 5 * i, 200, 0.9, 1)))
    order = np.argsort(out.xyxy[:, 0])
    assert out.track_ids[order].tolist() == [1, 2]


def test_a_garment_whose_class_flips_stays_one_track_with_its_majority_class():
    tracker = GarmentTracker()
    classes = [1, 1, 2, 1, 2, 1, 1, 2, 1, 1]  # the model calls it "top" 7 times, "trousers" 3 times
    ids = set()
    for i, c in enumerate(classes):
        out = tracker.update(dets((10 + 2 * i, 10, 110 + 2 * i, 210, 0.9, c)))
        ids.update(out.track_ids.tolist())
    assert ids == {1}
    (track,) = tracker.tracks
    assert track.class_id == 1 and track.votes == {1: 7, 2: 3}
    # a track's class follows the majority, not the latest detection
    tracker = GarmentTracker()
    for c in [1, 2, 2, 2, 1]:
        tracker.update(dets((10, 10, 110, 210, 0.9, c)))
    assert [t.class_id for t in tracker.tracks] == [2]


def test_two_classes_on_one_box_are_one_garment_when_asked():
    both = dets((10, 10, 110, 210, 0.9, 1), (12, 10, 110, 212, 0.7, 2))  # IoU 0.96
    assert sorted(GarmentTracker().update(both).labels) == ["top", "trousers"]  # off by default
    out = GarmentTracker(cross_class_nms_iou=0.8).update(both)
    assert out.labels == ["top"] and out.scores.tolist() == [np.float32(0.9)]
    apart = dets((10, 10, 110, 210, 0.9, 1), (10, 150, 110, 400, 0.8, 2))  # a top above trousers
    assert len(GarmentTracker(cross_class_nms_iou=0.8).update(apart)) == 2


def test_another_class_continues_a_track_only_where_the_boxes_overlap_closely():
    tracker = GarmentTracker()
    tracker.update(dets((10, 10, 110, 210, 0.9, 1)))
    out = tracker.update(dets((60, 10, 160, 210, 0.9, 2)))  # IoU 1/3: a different garment
    assert out.track_ids.tolist() == [2]
    # the same class wins over another class on the same box
    tracker = GarmentTracker()
    tracker.update(dets((10, 10, 110, 210, 0.9, 1)))
    out = tracker.update(dets((10, 10, 110, 210, 0.9, 2), (14, 10, 114, 210, 0.9, 1)))
    assert dict(zip(out.labels, out.track_ids.tolist(), strict=True)) == {"top": 1, "trousers": 2}
    # and the switch turns it off
    tracker = GarmentTracker(cross_class_iou=None)
    tracker.update(dets((10, 10, 110, 210, 0.9, 1)))
    assert tracker.update(dets((10, 10, 110, 210, 0.9, 2))).track_ids.tolist() == [2]


def test_fast_steady_motion_is_followed_by_velocity_prediction():
    # 60 px per frame on a 100 px wide box: consecutive boxes have IoU 0.25, the box two frames on
    # none, so after a dropout only the predicted position can match.
    tracker = GarmentTracker()
    ids = []
    for i in range(12):
        if i == 6:
            tracker.update(dets())
            continue
        out = tracker.update(dets((60 * i, 0, 60 * i + 100, 200, 0.9, 1)))
        ids.extend(out.track_ids.tolist())
    assert ids == [1] * 11


def test_track_lost_longer_than_the_buffer_is_new():
    tracker = GarmentTracker(lost_buffer=2)
    tracker.update(dets((10, 10, 110, 210, 0.9, 1)))
    for _ in range(4):
        tracker.update(dets())
    assert tracker.update(dets((10, 10, 110, 210, 0.9, 1))).track_ids.tolist() == [2]


def test_duplicate_detection_does_not_open_a_second_track():
    tracker = GarmentTracker()
    tracker.update(dets((10, 10, 110, 210, 0.9, 1)))
    out = tracker.update(dets((10, 10, 110, 210, 0.9, 1), (14, 12, 112, 214, 0.6, 1)))
    assert out.track_ids.tolist() == [1]
    assert len(tracker.tracks) == 1


def test_nested_same_class_duplicates_are_one_garment_other_classes_are_not():
    tracker = GarmentTracker()
    out = tracker.update(dets((100, 100, 300, 400, 0.9, 3),  # a bag
                              (150, 250, 290, 390, 0.7, 3),  # its flap, detected again as a bag
                              (160, 120, 280, 380, 0.8, 1)))  # a top inside the bag's box: other class
    assert sorted(out.labels) == ["bag", "top"]
    assert out.scores[out.labels.index("bag")] == np.float32(0.9)


def test_new_track_needs_a_higher_score_than_a_match():
    tracker = GarmentTracker(high_score=0.5)
    assert len(tracker.update(dets((10, 10, 110, 210, 0.55, 1)))) == 0  # below 0.5 + 0.1
    assert tracker.update(dets((10, 10, 110, 210, 0.65, 1))).track_ids.tolist() == [1]
    assert tracker.update(dets((12, 10, 112, 210, 0.55, 1))).track_ids.tolist() == [1]  # but extends


def with_embeddings(d: Detections, *vectors) -> Detections:
    d.embeddings = np.array([np.asarray(v, np.float32) / np.linalg.norm(v) for v in vectors], np.float32)
    return d


def test_after_a_cut_the_same_place_is_not_the_same_garment():
    """Position means nothing across a shot cut: an unlike garment where the old one stood is new."""
    tracker = GarmentTracker(reid_similarity=0.8)
    for _ in range(3):
        tracker.update(with_embeddings(dets((100, 50, 200, 300, 0.9, 1)), [1, 0, 0]))
    out = tracker.update(with_embeddings(dets((100, 50, 200, 300, 0.9, 1)), [0, 1, 0]), cut=True)
    assert out.track_ids.tolist() == [2]
    # without the cut the same frame continues the track
    tracker = GarmentTracker()
    for _ in range(3):
        tracker.update(with_embeddings(dets((100, 50, 200, 300, 0.9, 1)), [1, 0, 0]))
    assert tracker.update(with_embeddings(dets((100, 50, 200, 300, 0.9, 1)), [0, 1, 0])).track_ids.tolist() == [1]


def test_a_garment_seen_again_after_cuts_continues_its_track_by_appearance():
    tracker = GarmentTracker(reid_similarity=0.8)
    for i in range(3):  # shot 1: a top (track 1) and a bag (track 2)
        tracker.update(with_embeddings(dets((100 + i, 50, 200 + i, 300, 0.9, 1), (300, 200, 360, 260, 0.9, 3)),
                                       [1, 0, 0], [0, 0, 1]))
    for i in range(12):  # shot 2, longer than lost_buffer: someone else's top
        out = tracker.update(with_embeddings(dets((400, 50, 500, 300, 0.9, 1)), [0, 1, 0]), cut=i == 0)
        assert out.track_ids.tolist() == [3]
    # shot 3: the first top again, elsewhere and slightly changed; a bag unlike the first one
    out = tracker.update(with_embeddings(dets((10, 80, 110, 330, 0.9, 1), (300, 200, 360, 260, 0.9, 3)),
                                         [1, 0.2, 0], [0, 1, 0.3]), cut=True)
    assert out.track_ids.tolist() == [1, 4]
    # and the continued track is matched by position again within the shot
    out = tracker.update(with_embeddings(dets((14, 80, 114, 330, 0.9, 1)), [0, 0, 1]))
    assert out.track_ids.tolist() == [1]


def test_without_embeddings_every_garment_after_a_cut_is_new():
    tracker = GarmentTracker()
    tracker.update(dets((100, 50, 200, 300, 0.9, 1)))
    assert tracker.update(dets((100, 50, 200, 300, 0.9, 1)), cut=True).track_ids.tolist() == [2]


def test_reid_is_on_by_default_at_a_high_cosine_and_never_crosses_classes():
    from closetai.analysis.track import REID_SIMILARITY

    def after_cut(tracker, second, label=1):
        tracker.update(with_embeddings(dets((100, 50, 200, 300, 0.9, 1)), [1, 0, 0]))
        return tracker.update(with_embeddings(dets((0, 50, 90, 300, 0.9, label)), second), cut=True).track_ids.tolist()

    angle = np.arccos(REID_SIMILARITY)
    near = [np.cos(angle * 0.9), np.sin(angle * 0.9), 0]  # just inside the default cosine
    far = [np.cos(angle * 1.1), np.sin(angle * 1.1), 0]  # just outside
    assert after_cut(GarmentTracker(), near) == [1]
    assert after_cut(GarmentTracker(), far) == [2]
    assert after_cut(GarmentTracker(reid_similarity=None), [1, 0, 0]) == [2]
    assert after_cut(GarmentTracker(reid_similarity=0.8), [1, 0, 0], label=2) == [2]


def test_reid_remembers_the_whole_clip_unless_given_a_buffer():
    def rejoined(**config) -> bool:
        tracker = GarmentTracker(**config)
        for _ in range(3):
            tracker.update(with_embeddings(dets((100, 50, 200, 300, 0.9, 1)), [1, 0, 0]))
        for i in range(400):  # 80 s at 5 fps of someone else
            tracker.update(with_embeddings(dets((400, 50, 500, 300, 0.9, 1)), [0, 1, 0]), cut=i == 0)
        out = tracker.update(with_embeddings(dets((10, 80, 110, 330, 0.9, 1)), [1, 0.1, 0]), cut=True)
        return out.track_ids.tolist() == [1]

    assert rejoined()
    assert not rejoined(reid_buffer=150)


def test_shot_cuts_tells_a_cut_from_a_pan():
    from closetai.analysis.track import ShotCuts

    rng = np.random.default_rng(0)
    street = rng.integers(0, 256, (300, 900, 3), dtype=np.uint8)
    street[:, :450] //= 3  # a darker half, so a pan changes the histogram a little
    other = np.full((300, 400, 3), (200, 40, 40), np.uint8)
    cuts = ShotCuts(0.4)
    pans = [cuts(street[:, x:x + 400]) for x in range(0, 300, 25)]
    assert pans == [False] * len(pans)
    assert cuts(other) is True and cuts(other) is False and cuts.count == 1
    assert ShotCuts(None)(other) is False


def _street_scene(rng, palette: np.ndarray, size=(240, 720)) -> np.ndarray:
    """A wide textured scene: blobs of the palette's colours on a noisy ground, so that every part of
    it has other colours (as a street has), and a pan or zoom changes the frame's histogram."""
    import cv2

    h, w = size
    scene = np.empty((h, w, 3), np.float32)
    scene[:] = palette[0]
    for _ in range(60):
        colour = palette[rng.integers(1, len(palette))]
        cv2.circle(scene, (int(rng.integers(0, w)), int(rng.integers(0, h))), int(rng.integers(8, 40)),
                   colour.tolist(), -1)
    scene += rng.normal(0, 12, scene.shape)
    return np.clip(scene, 0, 255).astype(np.uint8)


def test_shot_cuts_ignore_a_fast_pan_a_zoom_and_shade_through_h264(tmp_path):
    """Issue 18.2: camera motion at the analysis rate is no cut, a cut to another scene is; the frames go
    through an H.264 round trip like an upload. The whole-frame test alone fires on this motion."""
    import cv2

    from closetai.analysis.track import ShotCuts
    from closetai.media.video import H264Writer, iter_frames

    rng = np.random.default_rng(3)
    warm = np.float32([[70, 70, 75], [200, 40, 40], [230, 200, 60], [240, 240, 230], [40, 40, 40], [150, 90, 60]])
    cool = np.float32([[60, 120, 60], [40, 80, 200], [90, 200, 220], [120, 60, 160], [20, 60, 30], [200, 230, 250]])
    street = _street_scene(rng, warm)
    park = _street_scene(rng, cool)
    fw, fh = 160, 224  # a portrait frame, 2/3 of the scene's height

    def view(scene, cx, cy, height):
        s = fh / height
        m = np.float32([[s, 0, fw / 2 - cx * s], [0, s, fh / 2 - cy * s]])
        return cv2.warpAffine(scene, m, (fw, fh), borderMode=cv2.BORDER_REFLECT)

    frames = [view(street, 80 + 0.5 * 107 * i, 120, 160) for i in range(8)]  # a pan of 50 % of the frame
    frames += [view(street, 450, 120, 160 / 1.4 ** i) for i in range(1, 4)]  # zoom in, x1.4 per frame
    frames += [view(street, 450, 120, 160 / 1.4 ** i) for i in (2, 1, 0)]  # and out
    shade = np.float32([0.45, 0.5, 0.56])  # a step into blue shade
    frames += [np.clip(frames[-1] * shade, 0, 255).astype(np.uint8), frames[-1]]
    motion = len(frames) - 1
    frames += [view(park, 300, 120, 160), view(park, 330, 120, 160)]
    clip = tmp_path / "motion.mp4"
    with H264Writer(clip, fps=5) as writer:
        for f in frames:
            writer.write(f)
    decoded = [f.rgb for f in iter_frames(clip, fps=5)]
    assert len(decoded) == len(frames)

    cuts = ShotCuts(0.4)
    fired = [cuts(f) for f in decoded][1:]
    assert fired == [False] * motion + [True, False] and cuts.count == 1
    whole_frames = ShotCuts(0.4, camera_motion=False)
    assert any([whole_frames(f) for f in decoded][1:motion + 1])
