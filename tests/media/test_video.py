"""Video engine end to end on clips generated here with PyAV: decode/sample, rotation, H.264 output,
tracking, progress, bad inputs, and the `closetai video` CLI."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import av
import numpy as np
import pytest

from closetai.analysis.track import REID_SIMILARITY, TrackerConfig
from closetai.analysis.video import AnalysisCancelled, analyse_video
from closetai.cli import main
from closetai.media.video import (
    EmptyVideo,
    H264Writer,
    NotAVideo,
    NoVideoStream,
    VideoCorrupt,
    VideoLimits,
    VideoTooLarge,
    creation_time,
    iter_frames,
    middle_frame,
    probe_video,
)
from closetai.vision.detections import decode_mask
from tests.helpers import SHIPPED_MODEL, write_audio_only
from tests.media_helpers import (
    CCP_PHOTO,
    NAMES,
    RED,
    LookingRedPredictor,
    RedPredictor,
    panned_frames,
    two_shots,
    write_clip,
    write_clip_with_sound,
)


def decode_back(path: Path):
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(s)]
        return s.codec_context.name, s.codec_context.pix_fmt, frames


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".") or p.suffix == ".mp4")


# --- decoding and sampling -------------------------------------------------------------------------

def test_probe_reports_size_rate_duration(tmp_path):
    clip = write_clip(tmp_path / "c.mp4", panned_frames(20), fps=10)
    info = probe_video(clip)
    assert (info.width, info.height, info.codec, info.rotation) == (128, 96, "h264", 0)
    assert info.fps == pytest.approx(10)
    assert info.frame_count == 20
    assert info.duration_s == pytest.approx(2.0, abs=0.11)
    assert not info.has_audio


def test_frames_are_sampled_at_the_analysis_rate(tmp_path):
    clip = write_clip(tmp_path / "c.mp4", panned_frames(60), fps=30)
    frames = iter_frames(clip, fps=5)
    assert not isinstance(frames, list)  # a generator: one frame in memory at a time
    frames = list(frames)
    assert [f.source_index for f in frames] == list(range(0, 60, 6))
    assert [round(f.time, 3) for f in frames] == pytest.approx([i * 0.2 for i in range(10)], abs=1e-3)
    assert frames[0].rgb.dtype == np.uint8 and frames[0].rgb.shape == (96, 128, 3)
    assert len(list(iter_frames(clip, fps=None))) == 60
    assert len(list(iter_frames(clip, fps=0))) == 60
    assert probe_video(clip).sampled_count(5) == 10


def test_a_low_analysis_rate_is_not_mistaken_for_truncation(tmp_path):
    clip = write_clip(tmp_path / "c.mp4", panned_frames(40), fps=10)  # 4 s; samples at 0 s only
    assert [f.source_index for f in iter_frames(clip, fps=0.25)] == [0]


@pytest.mark.parametrize("rotation", [-90, 90, 180])
def test_rotated_clip_comes_out_upright(tmp_path, rotation):
    upright = np.full((64, 32, 3), 200, dtype=np.uint8)  # portrait, red band on top, blue at the left
    upright[:12] = RED
    upright[12:, :8] = (30, 30, 220)
    # stored = upright turned the other way, as a phone held upright stores its sensor's landscape
    stored = np.ascontiguousarray(np.rot90(upright, k=-rotation // 90))
    clip = write_clip(tmp_path / "r.mp4", [stored] * 5, fps=5, rotation=rotation)
    info = probe_video(clip)
    assert (info.width, info.height) == (32, 64)
    frame = next(iter_frames(clip, fps=None)).rgb
    assert frame.shape == (64, 32, 3)
    assert frame[3, 16, 0] > 170 and frame[3, 16, 2] < 90  # red on top
    assert frame[40, 3, 2] > 170 and frame[40, 3, 0] < 90  # blue on the left
    assert frame[40, 25, 0] == pytest.approx(200, abs=25)


def test_rotated_clip_is_analysed_upright(tmp_path):
    upright = list(panned_frames(10, h=128, w=96))
    stored = [np.ascontiguousarray(np.rot90(f, k=1)) for f in upright]
    clip = write_clip(tmp_path / "r.mp4", stored, fps=10, rotation=-90)
    result = analyse_video(RedPredictor(), clip, fps=None)
    assert (result.info.width, result.info.height) == (96, 128)
    x1, y1, x2, y2 = result.frames[0].detections.xyxy[0]
    assert (x1, y1, x2, y2) == pytest.approx((20, 30, 50, 70), abs=2)


def clip_recorded_at(path: Path, recorded: str | None) -> Path:
    """Nine flat grey frames (20, 40, ..., 180) in an mp4 whose header says `recorded` (None: nothing)."""
    with av.open(str(path), "w") as c:
        if recorded:
            c.metadata["creation_time"] = recorded
        s = c.add_stream("libx264", rate=10)
        s.height, s.width, s.pix_fmt = 32, 48, "yuv420p"
        for i in range(9):
            for p in s.encode(av.VideoFrame.from_ndarray(np.full((32, 48, 3), 20 + 20 * i, np.uint8), format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


@pytest.mark.parametrize("recorded, expected", [
    ("2024-05-17T09:41:00.000000Z", datetime(2024, 5, 17, 9, 41)),
    ("2024-05-17T11:41:00+02:00", datetime(2024, 5, 17, 9, 41)),  # a phone's local time: stored as UTC
    ("1970-01-01T00:00:00Z", None),  # what encoders write for "unknown"
    (None, None),
])
def test_creation_time_is_the_recording_time_in_naive_utc(tmp_path, recorded, expected):
    assert creation_time(clip_recorded_at(tmp_path / "a.mp4", recorded)) == expected


def test_creation_time_of_what_is_not_a_video_is_none(tmp_path):
    (tmp_path / "notes.txt").write_text("not a clip")
    assert creation_time(tmp_path / "notes.txt") is None and creation_time(tmp_path / "missing.mp4") is None


def test_middle_frame_is_the_frame_halfway_through(tmp_path):
    rgb = middle_frame(clip_recorded_at(tmp_path / "a.mp4", None))
    assert rgb.shape == (32, 48, 3) and abs(float(rgb.mean()) - 100) < 3  # frame 4 of 0..8


# --- writing --------------------------------------------------------------------------------------

def test_writer_output_is_playable_h264_with_faststart(tmp_path):
    out = tmp_path / "a.mp4"
    with H264Writer(out, fps=5) as w:
        for f in panned_frames(7, h=97, w=129):  # odd size: cropped to even for yuv420p
            w.write(f)
    codec, pix_fmt, frames = decode_back(out)
    assert (codec, pix_fmt, len(frames)) == ("h264", "yuv420p", 7)
    assert frames[0].shape == (96, 128, 3)
    data = out.read_bytes()
    assert data.index(b"moov") < data.index(b"mdat")  # faststart: playable while downloading
    assert leftovers(tmp_path) == ["a.mp4"]


def test_writer_leaves_nothing_behind_on_failure(tmp_path):
    out = tmp_path / "a.mp4"
    with pytest.raises(RuntimeError), H264Writer(out, fps=5) as w:
        w.write(next(panned_frames(1)))
        raise RuntimeError("job failed")
    assert leftovers(tmp_path) == []
    with pytest.raises(Exception, match="no frames"), H264Writer(out, fps=5):
        pass
    assert leftovers(tmp_path) == []


# --- the engine -----------------------------------------------------------------------------------

def test_panned_garment_is_one_track_and_progress_reaches_total(tmp_path):
    clip = write_clip(tmp_path / "pan.mp4", panned_frames(30), fps=15)
    out = tmp_path / "ann.mp4"
    calls = []
    result = analyse_video(RedPredictor(), clip, fps=5, annotated_out=out, batch_size=4, annotate_all_frames=False,
                           on_progress=lambda d, t: calls.append((d, t)))
    assert len(result.frames) == 10
    assert calls[-1][0] == calls[-1][1] == 20  # 10 frames analysed + 10 written
    assert [d for d, _ in calls] == list(range(1, 21))
    assert result.complete and result.error is None
    assert len(result.tracks) == 1
    track = result.tracks[0]
    assert (track.track_id, track.label, track.frames_seen) == (1, "top", 10)
    assert track.first_seen_s == pytest.approx(0.0) and track.last_seen_s == pytest.approx(1.8, abs=0.01)
    assert track.colour["name"] == "red"
    assert track.crop.shape[:2] == (40, 30) and track.crop_jpeg()[:2] == b"\xff\xd8"
    assert all(f.detections.track_ids.tolist() == [1] for f in result.frames)
    assert result.timeline["counts"] == {"top": [1] * 10}
    codec, _, frames = decode_back(out)
    assert codec == "h264" and len(frames) == 10
    # the annotation is drawn: the first frame differs from the plain decoded one
    assert np.abs(frames[0].astype(int) - next(iter_frames(clip, fps=5)).rgb.astype(int)).mean() > 2
    doc = json.loads(json.dumps(result.to_json()))
    det = doc["frames"][3]["detections"][0]
    assert det["track_id"] == 1 and det["label"] == "top"
    assert decode_mask(det["mask"]).sum() == pytest.approx(40 * 30, rel=0.1)  # H.264 blurs edges


def streams_of(path: Path) -> dict[str, str]:
    with av.open(str(path)) as c:
        return {s.type: s.codec_context.name for s in c.streams}


def test_annotated_video_has_every_frame_at_the_source_rate_by_default(tmp_path):
    clip = write_clip(tmp_path / "pan.mp4", panned_frames(48), fps=24)  # 2 s at 24 fps
    out = tmp_path / "ann.mp4"
    calls = []
    result = analyse_video(RedPredictor(), clip, fps=5, annotated_out=out, on_progress=lambda d, t: calls.append((d, t)))
    assert len(result.frames) == 10 and result.annotated_mode == "all"
    codec, pix_fmt, frames = decode_back(out)
    assert (codec, pix_fmt, len(frames)) == ("h264", "yuv420p", 48)
    assert probe_video(out).fps == pytest.approx(24)
    assert calls[-1] == (58, 58)  # 10 analysed + 48 written
    data = out.read_bytes()
    assert data.index(b"moov") < data.index(b"mdat")
    # the analysis-rate video is still there, as a setting
    sampled = tmp_path / "sampled.mp4"
    analyse_video(RedPredictor(), clip, fps=5, annotated_out=sampled, annotate_all_frames=False)
    assert len(decode_back(sampled)[2]) == 10 and probe_video(sampled).fps == pytest.approx(5)


@pytest.mark.parametrize("name,audio,copied", [("aac.mp4", "aac", True), ("pcm.mov", "pcm_s16le", False)])
def test_annotated_video_keeps_the_clip_sound(tmp_path, name, audio, copied):
    clip = write_clip_with_sound(tmp_path / name, panned_frames(48), fps=24, audio=audio)
    out = tmp_path / "ann.mp4"
    result = analyse_video(RedPredictor(), clip, fps=5, annotated_out=out)
    assert streams_of(out) == {"video": "h264", "audio": "aac"}
    assert result.annotated_audio == ("copied aac" if copied else "re-encoded pcm_s16le to aac")
    assert result.to_json()["analysis"]["annotated"]["audio"] == result.annotated_audio
    assert len(decode_back(out)[2]) == 48
    with av.open(str(out)) as c:
        sound = np.concatenate([f.to_ndarray().ravel() for f in c.decode(audio=0)])
        assert c.duration / 1e6 == pytest.approx(2.0, abs=0.15)
    assert len(sound) / 16000 == pytest.approx(2.0, abs=0.15)
    assert np.abs(sound).max() > 0.1  # the tone, not silence
    data = out.read_bytes()
    assert data.index(b"moov") < data.index(b"mdat")
    assert leftovers(tmp_path) == sorted(["ann.mp4", name] if name.endswith(".mp4") else ["ann.mp4"])


@pytest.mark.parametrize("name,audio,garbage", [("noise.mkv", "flac", True), ("mute.mkv", "aac", None)])
def test_a_clip_whose_sound_cannot_be_added_still_gives_a_silent_video(tmp_path, caplog, name, audio, garbage):
    if garbage is None:  # an audio stream that holds no packet at all
        clip = tmp_path / name
        with av.open(str(clip), "w", format="matroska") as c:
            v = c.add_stream("libx264", rate=10)
            v.width, v.height, v.pix_fmt = 128, 96, "yuv420p"
            c.add_stream(audio, rate=16000, layout="mono")
            for rgb in panned_frames(20):
                for p in v.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                    c.mux(p)
            for p in v.encode():
                c.mux(p)
    else:
        clip = write_clip_with_sound(tmp_path / name, panned_frames(20), fps=10, audio=audio, fmt="matroska",
                                     garbage=True)
    assert probe_video(clip).has_audio
    out = tmp_path / "ann.mp4"
    with caplog.at_level("WARNING", logger="closetai.media.video"):
        result = analyse_video(RedPredictor(), clip, fps=5, annotated_out=out)
    assert result.complete and len(result.tracks) == 1
    assert streams_of(out) == {"video": "h264"}
    assert len(decode_back(out)[2]) == 20
    assert result.annotated_audio.startswith("none (")
    assert any("is silent" in r.getMessage() and name in r.getMessage() for r in caplog.records)
    assert leftovers(tmp_path) == ["ann.mp4"]


GREY = 128


def hopping_frames(n: int = 20, first: int = 4, last: int = 16, step: int = 6):
    """Grey frames; on even frames from `first` to `last` a red garment 30x40 px at x = 20 + step*i. Odd
    frames (never analysed at 5 fps of a 10 fps clip) are plain grey, so whatever is drawn on them is
    the in-between overlay, not the garment itself."""
    for i in range(n):
        frame = np.full((96, 160, 3), GREY, dtype=np.uint8)
        if first <= i <= last and i % 2 == 0:
            frame[30:70, 20 + step * i:50 + step * i] = RED
        yield frame


def test_in_between_frames_carry_their_tracks_overlay_moved_with_the_box(tmp_path):
    from closetai.vision.annotate import class_colour

    clip = write_clip(tmp_path / "hop.mp4", hopping_frames(), fps=10)
    out = tmp_path / "ann.mp4"
    result = analyse_video(RedPredictor(), clip, fps=5, annotated_out=out)
    assert [f.source_index for f in result.frames] == list(range(0, 20, 2))
    assert len(result.tracks) == 1 and result.tracks[0].frames_seen == 7
    _, _, frames = decode_back(out)
    assert len(frames) == 20
    tint = 0.45 * np.array(class_colour(1)) + 0.55 * GREY  # the mask overlay on grey

    def looks(frame, x1, x2):  # mean colour of rows 35-65 between columns x1 and x2
        return frame[35:65, x1:x2].reshape(-1, 3).mean(axis=0)

    for k in (5, 9, 13):  # odd frames between two sightings at x = 20 + 6(k-1) and 20 + 6(k+1)
        x = 20 + 6 * k
        assert looks(frames[k], x + 4, x + 26) == pytest.approx(tint, abs=12)  # the interpolated spot
        assert looks(frames[k], x - 6, x - 2) == pytest.approx([GREY] * 3, abs=12)  # not held where it was
        assert looks(frames[k], x + 32, x + 36) == pytest.approx([GREY] * 3, abs=12)  # not yet where it goes
    # not alive: before its first sighting (frame 4) and after its last (frame 16), no overlay anywhere
    for k in (1, 3, 17, 19):
        assert np.abs(frames[k].astype(int) - GREY).max() < 20, k

def test_only_detections_that_can_start_a_track_are_embedded(tmp_path):
    """The engine asks the predictor to embed from the lowest score a track can start at: the tracker's
    high threshold, or its new-track score when that is set lower."""

    class Recording(RedPredictor):
        def __init__(self):
            super().__init__()
            self.asked = []

        def predict_batch(self, frames, min_score=None, **kwargs):
            self.asked.append((min_score, kwargs.get("embed_min_score")))
            return super().predict_batch(frames, min_score)

    clip = write_clip(tmp_path / "pan.mp4", panned_frames(10), fps=10)
    p = Recording()
    analyse_video(p, clip, fps=5)
    assert set(p.asked) == {(0.1, 0.5)}
    p = Recording()
    analyse_video(p, clip, fps=5, tracker=TrackerConfig(new_track_score=0.3))
    assert set(p.asked) == {(0.1, 0.3)}


class FlippingPredictor(RedPredictor):
    """The red blob is a 'top', except on every third frame, where it is a 'dress'."""

    def predict_batch(self, frames, min_score=None, **kwargs):
        out = super().predict_batch(frames, min_score, **kwargs)
        for d in out:
            if len(d) and self.calls % 3 == 0:
                d.class_ids = np.full(len(d), NAMES.index("dress") + 1)
        return out


def test_a_garment_called_by_two_classes_is_one_track_of_its_majority_class(tmp_path):
    clip = write_clip(tmp_path / "pan.mp4", panned_frames(30), fps=10)
    result = analyse_video(FlippingPredictor(), clip, fps=5, batch_size=1)
    assert len(result.tracks) == 1
    track = result.tracks[0]
    assert (track.label, track.frames_seen) == ("top", 15)
    assert track.label_votes == {"top": 10, "dress": 5}
    assert {lab for f in result.frames for lab in f.detections.labels} == {"top"}
    assert result.timeline["counts"] == {"top": [1] * 15}


def test_flicker_shorter_than_min_hits_is_dropped(tmp_path):
    frames = list(panned_frames(10))
    for i in (4,):  # a one-frame red blob elsewhere: a false detection that must not count
        frames[i] = frames[i].copy()
        frames[i][5:20, 90:120] = RED
    clip = write_clip(tmp_path / "f.mp4", frames, fps=5)
    result = analyse_video(RedPredictor(), clip, fps=None, min_hits=2)
    assert len(result.tracks) == 1
    assert analyse_video(RedPredictor(), clip, fps=None, min_hits=1).tracks[0].frames_seen == 10
    # a track whose best detection stays below min_track_score is not counted (RedPredictor scores 0.9)
    assert len(analyse_video(RedPredictor(), clip, fps=None, min_track_score=0.85).tracks) == 1
    weak = analyse_video(RedPredictor(), clip, fps=None, min_track_score=0.95)
    assert weak.tracks == [] and all(len(f.detections) == 0 for f in weak.frames)


def test_a_box_only_predictor_is_tracked_too(tmp_path):
    """A predictor may give boxes without masks (bench/eval_tracking.py replays detections that way):
    tracks are still counted, flicker still dropped, and frames carry no masks."""

    class BoxesOnly(RedPredictor):
        def predict_batch(self, frames, min_score=None, **kwargs):
            out = super().predict_batch(frames, min_score)
            for d in out:
                d.masks = None
            return out

    frames = list(panned_frames(10))
    frames[4] = frames[4].copy()
    frames[4][5:20, 90:120] = RED  # a one-frame false blob
    clip = write_clip(tmp_path / "f.mp4", frames, fps=5)
    result = analyse_video(BoxesOnly(), clip, fps=None, min_hits=2, annotated_out=tmp_path / "a.mp4")
    assert [(t.track_id, t.frames_seen) for t in result.tracks] == [(1, 10)]
    assert all(f.mask_rles == [] and f.detections.track_ids.tolist() == [1] for f in result.frames)
    assert decode_back(tmp_path / "a.mp4")[0] == "h264"


def test_a_shot_cut_ends_position_matching(tmp_path):
    """Two shots with the red garment in the same place: across the cut the position carries nothing,
    and this predictor gives no embeddings to recognise it by, so it is counted in each shot."""
    clip = two_shots(tmp_path / "cut.mp4")
    result = analyse_video(RedPredictor(), clip, fps=None)
    assert [(t.track_id, t.frames_seen, t.first_seen_s) for t in result.tracks] == [(1, 10, 0.0), (2, 10, 2.0)]
    assert result.settings["shot_cuts"] == 1
    no_cuts = analyse_video(RedPredictor(), clip, fps=None, tracker=TrackerConfig(cut_distance=None))
    assert len(no_cuts.tracks) == 1 and no_cuts.settings["shot_cuts"] is None


def test_a_garment_that_looks_the_same_after_a_cut_keeps_its_track(tmp_path):
    clip = two_shots(tmp_path / "cut.mp4")
    result = analyse_video(LookingRedPredictor(), clip, fps=None)
    assert [(t.track_id, t.frames_seen, t.first_seen_s) for t in result.tracks] == [(1, 20, 0.0)]
    assert result.settings["shot_cuts"] == 1 and result.settings["reid_similarity"] == REID_SIMILARITY
    ids = {f.detections.track_ids.tolist()[0] for f in result.frames if len(f.detections)}
    assert ids == {1}  # the frames after the cut carry the first shot's track id
    no_reid = analyse_video(LookingRedPredictor(), clip, fps=None, tracker=TrackerConfig(reid_similarity=None))
    assert [t.track_id for t in no_reid.tracks] == [1, 2] and no_reid.settings["reid_similarity"] is None


def test_cancel_stops_and_leaves_no_output(tmp_path):
    clip = write_clip(tmp_path / "pan.mp4", panned_frames(20), fps=10)
    out = tmp_path / "ann.mp4"
    predictor = RedPredictor()
    with pytest.raises(AnalysisCancelled):
        analyse_video(predictor, clip, fps=None, annotated_out=out, batch_size=2,
                      should_stop=lambda: predictor.calls >= 2)
    assert predictor.calls == 2
    assert leftovers(tmp_path) == ["pan.mp4"]


def test_tiny_model_through_the_real_predictor(tmp_path):
    from closetai.vision.model import build_model, save_model
    from closetai.vision.predict import Predictor

    cfg = {"min_size": 128, "max_size": 256}
    model_path = tmp_path / "tiny.pt"
    save_model(build_model(len(NAMES) + 1, cfg), model_path, cfg,
               {"name": "tiny", "taxonomy": "closetai-ccp-15", "classes": list(NAMES), "score_threshold": 0.0})
    clip = write_clip(tmp_path / "pan.mp4", panned_frames(10), fps=5)
    result = analyse_video(Predictor(model_path, device="cpu", threads=2), clip, fps=None, batch_size=3,
                           annotated_out=tmp_path / "a.mp4")
    assert len(result.frames) == 10 and result.complete
    doc = json.loads(json.dumps(result.to_json()))
    assert doc["analysis"]["model"]["name"] == "tiny"
    for frame in doc["frames"]:
        for det in frame["detections"]:
            assert decode_mask(det["mask"]).shape == (96, 128)
            assert det["track_id"] in {t["track_id"] for t in doc["tracks"]}
    assert decode_back(tmp_path / "a.mp4")[0] == "h264"


@pytest.mark.slow
@pytest.mark.shared
@pytest.mark.skipif(not CCP_PHOTO.is_file(), reason="../shared CCP photos not present")
@pytest.mark.skipif(not SHIPPED_MODEL.is_file(), reason="models/closetai-ccp15.pt not present")
def test_shipped_model_counts_each_garment_once_on_a_ccp_clip(tmp_path):
    from closetai.media.imageio import load_rgb
    from closetai.vision.predict import Predictor

    photo, _ = load_rgb(CCP_PHOTO)
    h, w = (photo.shape[0] - 40) // 2 * 2, (photo.shape[1] - 40) // 2 * 2
    frames = [np.ascontiguousarray(photo[i * 4:i * 4 + h, i * 4:i * 4 + w]) for i in range(8)]  # slow pan
    clip = write_clip(tmp_path / "ccp.mp4", frames, fps=5)
    predictor = Predictor(SHIPPED_MODEL, device="cpu", threads=2)
    first = predictor(frames[0])
    calls = []
    result = analyse_video(predictor, clip, fps=5, on_progress=lambda d, t: calls.append((d, t)))
    assert calls[-1] == (8, 8)
    assert len(result.frames) == 8
    n_detections = sum(len(f.detections) for f in result.frames)
    assert n_detections >= 8
    # one track per garment, not one per frame: no more tracks than garments in the first frame
    assert 1 <= len(result.tracks) <= len(first)
    assert max(t.frames_seen for t in result.tracks) == 8
    assert all(t.frames_seen >= 4 for t in result.tracks)  # each followed for at least half the clip
    for label in {t.label for t in result.tracks}:
        assert sum(t.label == label for t in result.tracks) <= max(1, first.labels.count(label))


# --- bad input ------------------------------------------------------------------------------------

def _assert_refused(clip: Path, error: type, match: str, tmp_path: Path, **kw):
    out = tmp_path / "out" / "ann.mp4"
    out.parent.mkdir(exist_ok=True)
    with pytest.raises(error, match=match):
        analyse_video(RedPredictor(), clip, annotated_out=out, **kw)
    assert list(out.parent.iterdir()) == []


def test_random_bytes_are_not_a_video(tmp_path):
    clip = tmp_path / "noise.mp4"
    clip.write_bytes(np.random.default_rng(1).bytes(4000))
    _assert_refused(clip, NotAVideo, "not a video.*noise.mp4", tmp_path)


def test_text_file_is_not_a_video(tmp_path):
    clip = tmp_path / "notes.txt"
    clip.write_text("my outfit today\n" * 50)
    _assert_refused(clip, NotAVideo, "not a video.*notes.txt", tmp_path)


def test_an_image_is_not_a_video(tmp_path):
    from PIL import Image

    clip = tmp_path / "photo.jpg"
    Image.fromarray(next(panned_frames(1))).save(clip)
    _assert_refused(clip, NotAVideo, "not a video", tmp_path)


def test_missing_and_empty_files(tmp_path):
    _assert_refused(tmp_path / "gone.mp4", NotAVideo, "no such video file", tmp_path)
    (tmp_path / "empty.mp4").write_bytes(b"")
    _assert_refused(tmp_path / "empty.mp4", NotAVideo, "empty file", tmp_path)


def test_zero_frames(tmp_path):
    for name, fmt, codec in (("zero.mp4", "mp4", "libx264"), ("zero.avi", "avi", "mpeg4")):
        with av.open(str(tmp_path / name), "w", format=fmt) as c:
            s = c.add_stream(codec, rate=10)
            s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
            c.start_encoding()
        _assert_refused(tmp_path / name, EmptyVideo, f"no frames.*{name}", tmp_path)


def test_audio_only(tmp_path):
    clip = write_audio_only(tmp_path / "voice.m4a")
    _assert_refused(clip, NoVideoStream, "audio only", tmp_path)


def test_absurd_resolution_and_duration_limits(tmp_path):
    clip = write_clip(tmp_path / "c.mp4", panned_frames(20), fps=10)
    _assert_refused(clip, VideoTooLarge, r"resolution 128x96 is above the limit of 10,000 pixels", tmp_path,
                    limits=VideoLimits(max_pixels=10_000))
    _assert_refused(clip, VideoTooLarge, "2 s long, above the limit of 1 s", tmp_path,
                    limits=VideoLimits(max_duration_s=1))
    assert VideoTooLarge.status == 413


def test_truncated_clip_keeps_what_was_analysed(tmp_path):
    rng = np.random.default_rng(2)  # noise frames: every frame costs bytes, so a cut lands midway
    frames = [np.clip(f.astype(int) + rng.integers(-40, 40, f.shape), 0, 255).astype(np.uint8)
              for f in panned_frames(30)]
    full = write_clip(tmp_path / "full.mp4", frames, fps=10)
    clip = tmp_path / "cut.mp4"
    data = full.read_bytes()
    clip.write_bytes(data[:len(data) // 2])
    out = tmp_path / "ann.mp4"
    result = analyse_video(RedPredictor(), clip, fps=None, annotated_out=out)
    assert not result.complete
    assert "truncated" in result.error and "cut.mp4" in result.error
    assert 3 <= len(result.frames) < 30
    assert len(result.tracks) == 1 and result.tracks[0].frames_seen == len(result.frames)
    codec, _, written = decode_back(out)
    assert codec == "h264" and len(written) == len(result.frames)
    with pytest.raises(VideoCorrupt):
        list(iter_frames(clip, fps=None))
    # cut before the index (no faststart): nothing to analyse, refused outright
    slow = write_clip(tmp_path / "slow.mp4", frames, fps=10, faststart=False)
    (tmp_path / "slowcut.mp4").write_bytes(slow.read_bytes()[: slow.stat().st_size // 2])
    _assert_refused(tmp_path / "slowcut.mp4", NotAVideo, "truncated", tmp_path)


# --- CLI ------------------------------------------------------------------------------------------

def test_cli_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    clip = tmp_path / "notes.txt"
    clip.write_text("not a clip")
    code = main(["video", str(clip), "--json", str(tmp_path / "o.json"), "--annotated", str(tmp_path / "o.mp4"),
                 "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.count("\n") == 0 and err.startswith("closetai: error: not a video")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_cli_writes_tracks_frames_and_timeline(tmp_path, capsys):
    from closetai.vision.model import build_model, save_model

    cfg = {"min_size": 128, "max_size": 256}
    save_model(build_model(len(NAMES) + 1, cfg), tmp_path / "tiny.pt", cfg,
               {"name": "tiny", "taxonomy": "closetai-ccp-15", "classes": list(NAMES), "score_threshold": 0.3})
    clip = write_clip(tmp_path / "pan.mp4", panned_frames(20), fps=10)
    code = main(["video", str(clip), "--json", str(tmp_path / "o.json"), "--annotated", str(tmp_path / "o.mp4"),
                 "--fps", "5", "--model", str(tmp_path / "tiny.pt"), "--device", "cpu", "--threads", "2"])
    assert code == 0
    doc = json.loads((tmp_path / "o.json").read_text())
    assert set(doc) == {"video", "analysis", "tracks", "frames", "timeline"}
    assert doc["analysis"]["frames_analysed"] == 10 and doc["analysis"]["fps"] == 5
    assert len(doc["timeline"]["times_s"]) == 10
    assert doc["analysis"]["annotated"]["frames"] == "all"
    assert decode_back(tmp_path / "o.mp4")[0] == "h264" and len(decode_back(tmp_path / "o.mp4")[2]) == 20
    assert "10 frames analysed" in capsys.readouterr().err
    assert doc["analysis"]["settings"]["shot_cuts"] == 0
    clip = two_shots(tmp_path / "cut.mp4")
    for flags, cuts, reid in (([], 1, REID_SIMILARITY), (["--no-cuts"], None, None), (["--no-reid"], 1, None)):
        assert main(["video", str(clip), "--json", str(tmp_path / "c.json"), "--model", str(tmp_path / "tiny.pt"),
                     "--device", "cpu", *flags]) == 0
        settings = json.loads((tmp_path / "c.json").read_text())["analysis"]["settings"]
        assert (settings["shot_cuts"], settings["reid_similarity"]) == (cuts, reid)
    capsys.readouterr()
    assert main(["video", str(clip), "--json", str(tmp_path / "s.json"), "--annotated", str(tmp_path / "s.mp4"),
                 "--fps", "5", "--model", str(tmp_path / "tiny.pt"), "--device", "cpu", "--no-all-frames"]) == 0
    assert json.loads((tmp_path / "s.json").read_text())["analysis"]["annotated"]["frames"] == "sampled"
    assert probe_video(tmp_path / "s.mp4").fps == pytest.approx(5)


def test_cli_truncated_clip_writes_partial_json_and_exits_2(tmp_path, capsys):
    from closetai.vision.model import build_model, save_model

    cfg = {"min_size": 128, "max_size": 256}
    save_model(build_model(len(NAMES) + 1, cfg), tmp_path / "tiny.pt", cfg,
               {"name": "tiny", "taxonomy": "closetai-ccp-15", "classes": list(NAMES), "score_threshold": 0.3})
    rng = np.random.default_rng(3)
    frames = [np.clip(f.astype(int) + rng.integers(-40, 40, f.shape), 0, 255).astype(np.uint8)
              for f in panned_frames(30)]
    data = write_clip(tmp_path / "full.mp4", frames, fps=10).read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[:len(data) // 2])
    code = main(["video", str(tmp_path / "cut.mp4"), "--json", str(tmp_path / "o.json"), "--fps", "0",
                 "--model", str(tmp_path / "tiny.pt"), "--device", "cpu", "--threads", "2", "--quiet"])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("closetai: error: video ") and "partial results written" in err[-1]
    doc = json.loads((tmp_path / "o.json").read_text())
    assert doc["analysis"]["complete"] is False and 0 < doc["analysis"]["frames_analysed"] < 30


def test_default_batch_size_is_one_frame_on_cpu_and_eight_on_a_gpu():
    import threading
    from types import SimpleNamespace

    import torch

    from closetai.analysis.video import default_batch_size
    from closetai.jobs.runner import _SerialisedPredictor

    def fake(device):
        return SimpleNamespace(device=torch.device(device), min_score=0.5, class_names=("top",), info={})

    assert default_batch_size(fake("cpu")) == 1
    assert default_batch_size(fake("cuda")) == 8
    assert default_batch_size(object()) == 1  # no device known: the safe choice
    # the web job's wrapper around the shared predictor keeps the device visible
    assert default_batch_size(_SerialisedPredictor(fake("cuda"), threading.Lock(), 448)) == 8
