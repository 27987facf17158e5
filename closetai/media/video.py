"""Video in and out with PyAV: probe, decode as a stream of upright RGB frames sampled at an analysis
rate (here), and write H.264 mp4 (faststart) atomically (closetai.media.encode, re-exported here).

Frames are produced by a generator, so memory stays flat however long the clip is. Every error a user
can cause (not a video, audio only, no frames, too large, corrupt midway) is a `VideoError` subclass
whose message names the file and says what is wrong.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import av
import numpy as np

from closetai.media.container import (  # noqa: F401  (re-exported: callers import the errors from here)
    MP4_AUDIO_COPY,
    VIDEO_CONTAINERS,
    EmptyVideo,
    NotAVideo,
    NoVideoStream,
    VideoCorrupt,
    VideoError,
    VideoTooLarge,
    _open,
)
from closetai.media.imageio import MAX_ASPECT, aspect_too_far

DEFAULT_ANALYSIS_FPS = 5.0
log = logging.getLogger("closetai.media.video")

@dataclass(frozen=True)
class VideoLimits:
    """What the engine agrees to decode. Checked from the header before any frame is decoded, and
    again while decoding (headers can lie)."""

    max_duration_s: float = 600.0
    max_pixels: int = 3840 * 2160  # 4K UHD; phones record at most this

    def __post_init__(self) -> None:
        if self.max_duration_s <= 0 or self.max_pixels <= 0:
            raise ValueError("VideoLimits: limits must be positive")


@dataclass(frozen=True)
class VideoInfo:
    """What probing a clip tells. width/height are the upright (displayed) size after rotation."""

    path: str
    container: str
    codec: str
    width: int
    height: int
    rotation: int  # degrees counter-clockwise applied to stored frames to show them upright
    fps: float  # average frame rate of the stream
    duration_s: float
    frame_count: int  # from the header, or estimated from duration x fps when the header has none
    has_audio: bool

    def sampled_count(self, fps: float | None) -> int:
        """Expected number of frames `iter_frames(fps=...)` yields (exact for constant-rate clips)."""
        if not fps or fps >= self.fps:
            return self.frame_count
        return max(1, math.ceil(self.duration_s * fps - 1e-6))

    def to_json(self) -> dict:
        return {"name": Path(self.path).name, "container": self.container, "codec": self.codec,
                "width": self.width, "height": self.height, "rotation": self.rotation,
                "fps": round(self.fps, 3), "duration_s": round(self.duration_s, 3),
                "frame_count": self.frame_count, "has_audio": self.has_audio}


@dataclass
class Frame:
    """One decoded, upright frame. index counts yielded (sampled) frames; source_index counts all
    decoded frames; time is seconds from the stream's start."""

    index: int
    source_index: int
    time: float
    rgb: np.ndarray


def _stream_duration(container, stream) -> float:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return 0.0


def _upright(frame: av.VideoFrame, width: int, height: int, rotation: int) -> np.ndarray:
    """Decoded frame -> upright RGB uint8 array of the probed (stored) size."""
    if frame.width != width or frame.height != height:  # mid-stream size change: keep one size
        rgb = frame.reformat(width=width, height=height, format="rgb24").to_ndarray()
    else:
        rgb = frame.to_ndarray(format="rgb24")
    k = (rotation // 90) % 4
    return np.ascontiguousarray(np.rot90(rgb, k)) if k else rgb


def _rotation(frame: av.VideoFrame) -> int:
    """Display-matrix rotation (PyAV reads it from the frame's side data, where FFmpeg puts the
    stream's matrix and the legacy `rotate` tag), snapped to a multiple of 90 degrees."""
    angle = getattr(frame, "rotation", 0) or 0
    return int(round(angle / 90.0)) * 90 % 360


def probe_video(path: str | os.PathLike, limits: VideoLimits | None = None) -> VideoInfo:
    """Read a clip's header and its first frame. Raises NotAVideo, NoVideoStream, EmptyVideo,
    VideoTooLarge or VideoCorrupt (first frame undecodable)."""
    limits = limits or VideoLimits()
    name = Path(path).name
    container = _open(path)
    try:
        stream = container.streams.video[0]
        cc = stream.codec_context
        if cc is None:  # FFmpeg found no decoder for the stream's codec tag (a damaged sample description)
            raise VideoCorrupt(f"video cannot be decoded (unknown codec or corrupt header): {name}")
        coded_w, coded_h = cc.width, cc.height
        if coded_w * coded_h > limits.max_pixels:
            raise VideoTooLarge(f"video resolution {coded_w}x{coded_h} is above the limit of "
                                f"{limits.max_pixels:,} pixels per frame: {name}")
        duration = _stream_duration(container, stream)
        if duration > limits.max_duration_s:
            raise VideoTooLarge(f"video is {duration:.0f} s long, above the limit of "
                                f"{limits.max_duration_s:.0f} s: {name}; trim it first")
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        fps = float(rate) if rate else 0.0
        stream.thread_type = "AUTO"
        try:
            first = next(container.decode(stream), None)
        except av.error.FFmpegError as exc:
            raise VideoCorrupt(f"video cannot be decoded (corrupt first frame): {name}") from exc
        if first is None:
            raise EmptyVideo(f"video has no frames: {name}")
        if coded_w * coded_h == 0:
            coded_w, coded_h = first.width, first.height
        if not fps:
            fps = 25.0  # a stream without a rate (rare, raw streams): assume PAL and say so in the info
        frames = stream.frames or max(1, round(duration * fps))
        if not duration:
            duration = frames / fps
        if frames > 2 * duration * fps + 10:  # a header can claim any count; its own length and rate bound it
            raise VideoCorrupt(f"video header declares {frames:,} frames, more than {duration:.1f} s at "
                               f"{fps:.3g} fps can hold (corrupt header): {name}")
        if aspect_too_far(coded_w, coded_h):
            raise NotAVideo(f"video too thin: {coded_w}x{coded_h} pixels, its long side more than "
                            f"{MAX_ASPECT} times its short side: {name}")
        rotation = _rotation(first)
        width, height = (coded_h, coded_w) if rotation in (90, 270) else (coded_w, coded_h)
        return VideoInfo(str(path), container.format.name, cc.name, width, height, rotation, fps, duration,
                         frames, bool(container.streams.audio))
    finally:
        container.close()


def iter_frames(path: str | os.PathLike, fps: float | None = DEFAULT_ANALYSIS_FPS,
                limits: VideoLimits | None = None, info: VideoInfo | None = None) -> Iterator[Frame]:
    """Yield upright RGB frames sampled at `fps` (None or 0: every frame).

    Sampling is by timestamp (the first frame at or after each 1/fps tick), so variable-frame-rate
    phone clips sample evenly. Raises VideoCorrupt after the last good frame when decoding fails
    part-way or the stream ends well before its declared duration; the frames yielded before that
    are valid. Memory: one decoded frame at a time.
    """
    limits = limits or VideoLimits()
    info = info or probe_video(path, limits)
    name = Path(path).name
    coded_w, coded_h = (info.height, info.width) if info.rotation in (90, 270) else (info.width, info.height)
    every = not fps or fps >= info.fps
    container = _open(path)
    source_index, yielded, last_time, last_decoded, next_tick = -1, 0, 0.0, 0.0, 0
    try:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        start = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
        try:
            for frame in container.decode(stream):
                source_index += 1
                t = (frame.time - start) if frame.time is not None else source_index / info.fps
                last_decoded = max(last_decoded, t)
                if t > limits.max_duration_s + 1.0:
                    raise VideoTooLarge(f"video runs past the limit of {limits.max_duration_s:.0f} s: {name}")
                if frame.width * frame.height > limits.max_pixels:
                    raise VideoTooLarge(f"video frame {frame.width}x{frame.height} is above the limit of "
                                        f"{limits.max_pixels:,} pixels: {name}")
                if not every:
                    # the 1e-6 absorbs float error in pts * time_base (6/30 s * 5 fps = 0.9999...)
                    if t * fps + 1e-6 < next_tick:
                        continue
                    next_tick = math.floor(t * fps + 1e-6) + 1
                last_time = max(last_time, t)
                yield Frame(yielded, source_index, t, _upright(frame, coded_w, coded_h, info.rotation))
                yielded += 1
        except av.error.FFmpegError as exc:
            raise VideoCorrupt(f"video is corrupt or truncated after {last_time:.1f} s "
                               f"({yielded} frames analysed): {name}", yielded, last_time) from exc
        if yielded == 0:
            raise EmptyVideo(f"video has no frames: {name}")
        # A cut-off file can also just end early without a decode error; trust the header's duration
        # (with a second of slack for audio-padded or rounded containers).
        frame_step = 1.0 / info.fps
        if info.duration_s - (last_decoded + frame_step) > max(1.0, 0.1 * info.duration_s):
            raise VideoCorrupt(f"video ends at {last_decoded:.1f} s but declares {info.duration_s:.1f} s "
                               f"(truncated?): {name}", yielded, last_time)
    finally:
        container.close()


def creation_time(path: str | os.PathLike) -> datetime | None:
    """The container's creation_time (phones write the recording time, UTC) -> naive UTC, else None."""
    try:
        with av.open(str(path)) as c:
            raw = c.metadata.get("creation_time") or c.streams.video[0].metadata.get("creation_time")
    except Exception:
        return None
    if not raw:
        return None
    try:
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC).replace(tzinfo=None)
    return parsed if 1990 < parsed.year < 2200 else None  # encoders write 1970/1904 for "unknown"


def middle_frame(path: str | os.PathLike) -> np.ndarray | None:
    """The frame halfway through the video stream (as stored, not turned upright) as RGB, None when it
    has none: a thumbnail of a clip this project wrote."""
    with av.open(str(path)) as c:
        n = c.streams.video[0].frames or 1
        rgb = None
        for i, frame in enumerate(c.decode(video=0)):
            rgb = frame.to_ndarray(format="rgb24")
            if i >= n // 2:
                break
    return rgb


# Writing lives in closetai.media.encode; the names stay importable from here, where callers found them.
from closetai.media.encode import H264Writer, NoAudio, mux_audio  # noqa: E402

__all__ = ["DEFAULT_ANALYSIS_FPS", "VIDEO_CONTAINERS", "VideoError", "NotAVideo", "NoVideoStream", "EmptyVideo",
           "VideoTooLarge", "VideoCorrupt", "VideoLimits", "VideoInfo", "Frame", "probe_video", "iter_frames",
           "creation_time", "middle_frame", "H264Writer", "NoAudio", "mux_audio"]
