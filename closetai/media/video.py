"""Video in and out with PyAV: probe, decode as a stream of upright RGB frames sampled at an analysis
rate, and write H.264 mp4 (faststart) atomically.

Frames are produced by a generator, so memory stays flat however long the clip is. Every error a user
can cause (not a video, audio only, no frames, too large, corrupt midway) is a `VideoError` subclass
whose message names the file and says what is wrong.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from closetai import ClosetAIError
from closetai.media.imageio import MAX_ASPECT, aspect_too_far

DEFAULT_ANALYSIS_FPS = 5.0
# Audio codecs copied into an MP4 as they are (Chrome, Firefox and Safari all play them there); any other
# (PCM from a camera's mov, Vorbis/Opus from a webm, AMR from an old phone) is re-encoded to AAC.
MP4_AUDIO_COPY = {"aac", "mp3"}
log = logging.getLogger("closetai.media.video")
# Container families accepted as video (FFmpeg demuxer names). Anything else FFmpeg can open (a
# JPEG, a GIF, a text file read by the "tty" demuxer) is refused: it is not a clip a person filmed.
VIDEO_CONTAINERS = {"mov", "mp4", "m4a", "3gp", "3g2", "mj2", "matroska", "webm", "avi", "mpegts", "mpeg"}
_OPEN_OPTIONS = {"format_whitelist": ",".join(sorted(VIDEO_CONTAINERS)), "protocol_whitelist": "file"}


class VideoError(ClosetAIError):
    status = 400


class NotAVideo(VideoError):
    """The file is missing, unreadable, or not a video container FFmpeg can parse."""


class NoVideoStream(VideoError):
    """A media file without a video stream (e.g. audio only)."""


class EmptyVideo(VideoError):
    """A video stream that yields no frame."""


class VideoTooLarge(VideoError):
    """Resolution or duration above the configured limits."""

    status = 413


class VideoCorrupt(VideoError):
    """Decoding failed part-way; `frames_read` frames (up to `seconds_read`) were good."""

    status = 422

    def __init__(self, message: str, frames_read: int = 0, seconds_read: float = 0.0):
        super().__init__(message)
        self.frames_read = frames_read
        self.seconds_read = seconds_read


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


def _open(path: str | os.PathLike) -> av.container.InputContainer:
    name = Path(path).name
    if not Path(path).is_file():
        raise NotAVideo(f"no such video file: {path}")
    if Path(path).stat().st_size == 0:
        raise NotAVideo(f"empty file, not a video: {name}")
    try:
        # Only the container demuxers we accept may read the file, and only from a local file: a
        # playlist or concat script (hls, concat) would otherwise open the files or URLs it names
        # while being opened (other users' uploads, itself in a loop until file handles run out).
        container = av.open(str(path), "r", container_options=_OPEN_OPTIONS)
    except av.error.FFmpegError as exc:
        raise NotAVideo(f"not a video (unrecognised content, or truncated before its index): {name}; "
                        "use mp4, mov, webm or avi") from exc
    if not set(container.format.name.split(",")) & VIDEO_CONTAINERS:
        kind = container.format.long_name or container.format.name
        container.close()
        raise NotAVideo(f"not a video container ({kind}): {name}; use mp4, mov, webm or avi")
    if not container.streams.video:
        has_audio, has_streams = bool(container.streams.audio), bool(len(container.streams))
        container.close()
        if has_audio:
            raise NoVideoStream(f"audio only, no video stream: {name}")
        if not has_streams:  # what an mp4 written with no frame looks like: its track is dropped
            raise EmptyVideo(f"video has no frames (no streams at all): {name}")
        raise NoVideoStream(f"no video stream in {name}")
    return container


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


def _rate(fps: float | Fraction) -> Fraction:
    rate = Fraction(fps).limit_denominator(1001)
    if rate <= 0:
        raise ValueError(f"frame rate must be positive, got {fps}")
    return rate


class H264Writer:
    """Write RGB frames to an H.264 mp4 (libx264, yuv420p, +faststart) that browsers play.

    A context manager: frames go to a hidden temporary file beside `path`, renamed onto `path` only
    when the block ends without an exception, so a failure never leaves a half-written video. The
    frame size is taken from the first frame (odd sizes are cropped by one pixel: yuv420p needs even).
    """

    def __init__(self, path: str | os.PathLike, fps: float | Fraction, crf: int = 23, preset: str = "veryfast",
                 audio_from: str | os.PathLike | None = None):
        self.path = Path(path)
        self.audio_from = audio_from  # a clip whose sound is added at the end (mux_audio)
        self.audio: str | None = None  # what happened to it: "copied aac", "re-encoded ...", or why none
        self.rate = _rate(fps)
        self.crf, self.preset = crf, preset
        self.frames_written = 0
        self._container = None
        self._stream = None
        self._tmp: Path | None = None

    def __enter__(self) -> H264Writer:
        if not self.path.parent.is_dir():
            raise VideoError(f"output folder does not exist: {self.path.parent}")
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.stem}.", suffix=".part.mp4", dir=self.path.parent)
        os.close(fd)
        self._tmp = Path(tmp)
        try:
            self._container = av.open(str(self._tmp), "w", format="mp4", options={"movflags": "+faststart"})
        except BaseException:
            self._tmp.unlink(missing_ok=True)
            raise
        return self

    def write(self, rgb: np.ndarray) -> None:
        if self._container is None:
            raise RuntimeError("H264Writer.write outside its `with` block")
        h, w = rgb.shape[:2]
        if self._stream is None:
            if w < 2 or h < 2:
                raise VideoError(f"frame too small to encode: {w}x{h}")
            stream = self._container.add_stream("libx264", rate=self.rate)
            stream.width, stream.height = w - w % 2, h - h % 2
            stream.pix_fmt = "yuv420p"
            stream.options = {"crf": str(self.crf), "preset": self.preset}
            self._stream = stream
        sw, sh = self._stream.width, self._stream.height
        if (w, h) != (sw, sh):
            if w < sw or h < sh:
                raise VideoError(f"frame size changed from {sw}x{sh} to {w}x{h} while writing {self.path.name}")
            rgb = rgb[:sh, :sw]
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        frame.pts = self.frames_written
        frame.time_base = 1 / self.rate
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self.frames_written += 1

    def __exit__(self, exc_type, exc, tb) -> None:
        container, self._container = self._container, None
        try:
            if exc_type is None:
                if self._stream is None:
                    raise VideoError(f"no frames were written to {self.path.name}")
                for packet in self._stream.encode():
                    container.mux(packet)
            container.close()
            if exc_type is None:
                if self.audio_from is not None:
                    self._add_audio()
                os.replace(self._tmp, self.path)
        except BaseException:
            try:
                container.close()
            except Exception:  # already closed or broken; the temp file goes either way
                pass
            raise
        finally:
            if self._tmp is not None and self._tmp.exists():
                self._tmp.unlink()

    def _add_audio(self) -> None:
        """Replace the silent temp file with one that also has the source's sound. Any failure (no
        audio, an undecodable or odd stream) keeps the silent video and logs why: sound is a nicety,
        the annotated video is the job."""
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.stem}.", suffix=".audio.mp4", dir=self.path.parent)
        os.close(fd)
        try:
            self.audio = mux_audio(self._tmp, self.audio_from, tmp, self.frames_written / self.rate)
            os.replace(tmp, self._tmp)
        except Exception as exc:  # noqa: BLE001 - every failure means the same: no sound
            self.audio = f"none ({type(exc).__name__}: {exc})"
            log.warning("annotated video %s is silent: the sound of %s could not be added: %s", self.path.name,
                        Path(self.audio_from).name, exc)
        finally:
            Path(tmp).unlink(missing_ok=True)


class NoAudio(VideoError):
    """The source has no audio stream to add."""


def _audio_packets(source: av.container.InputContainer, out: av.container.OutputContainer, offset_s: float,
                   end_s: float):
    """Add an audio stream to `out` from `source`'s first one and yield (time, packet) for it, times in
    seconds from the video's start, up to `end_s`. Copied when the codec fits MP4, else re-encoded to
    AAC. The first packet is produced before the stream is added, so a stream that yields nothing (or
    fails at once) adds nothing."""
    ins = source.streams.audio[0]
    name = ins.codec_context.name if ins.codec_context is not None else None
    if name in MP4_AUDIO_COPY:
        packets = (p for p in source.demux(ins) if p.pts is not None and p.size)
        first = next(packets, None)
        if first is None:
            raise NoAudio("the audio stream has no packets")
        stream = out.add_stream_from_template(ins)
        shift = round(offset_s / ins.time_base)
        for packet in itertools.chain([first], packets):
            t = float((packet.pts - shift) * ins.time_base)
            if t >= end_s:
                return
            if t + float((packet.duration or 0) * ins.time_base) <= 0:
                continue  # before the video's first frame
            packet.pts -= shift
            if packet.dts is not None:
                packet.dts -= shift
            packet.stream = stream
            yield t, packet
        return
    if name is None:
        raise NoAudio("no decoder for the audio stream")
    rate = min(ins.codec_context.sample_rate or 48000, 48000)
    layout = "mono" if (ins.codec_context.channels or 2) == 1 else "stereo"
    resampler = av.AudioResampler(format="fltp", layout=layout, rate=rate)

    def encoded(stream):
        samples = None
        for frame in source.decode(ins):
            t = float(frame.time) - offset_s if frame.time is not None else None
            if t is not None and t >= end_s:
                break
            if t is not None and t + frame.samples / (frame.sample_rate or rate) <= 0:
                continue
            for f in resampler.resample(frame):
                if samples is None:
                    samples = max(0, round((t or 0.0) * rate))
                f.pts, f.time_base = samples, Fraction(1, rate)
                samples += f.samples
                yield from stream.encode(f)
        yield from stream.encode(None)

    stream = out.add_stream("aac", rate=rate, layout=layout)
    for packet in encoded(stream):
        t = float(packet.pts * packet.time_base) if packet.pts is not None else 0.0
        if t >= end_s:
            continue
        yield t, packet


def mux_audio(video: str | os.PathLike, source: str | os.PathLike, out_path: str | os.PathLike,
              end_s: float) -> str:
    """Write `out_path`: `video`'s packets as they are plus `source`'s sound (aligned to the source's
    first video frame, cut at `end_s`), interleaved by time, MP4 with faststart. Returns what was done
    ("copied aac", "re-encoded pcm_s16le to aac"); raises on any failure (NoAudio when there is none)."""
    src = _open(source)
    try:
        if not src.streams.audio:
            raise NoAudio("the source has no audio stream")
        vsrc = src.streams.video[0]
        offset = float(vsrc.start_time * vsrc.time_base) if vsrc.start_time is not None else 0.0
        ins = src.streams.audio[0]
        name = ins.codec_context.name if ins.codec_context is not None else "unknown"
        with av.open(str(video)) as vin, av.open(str(out_path), "w", format="mp4",
                                                 options={"movflags": "+faststart"}) as out:
            vs = vin.streams.video[0]
            vout = out.add_stream_from_template(vs)
            audio = _audio_packets(src, out, offset, end_s)
            first = next(audio, None)  # adds the audio stream (or raises) before the header is written
            if first is None:
                raise NoAudio("the audio stream has no sound before the video's end")

            def video_packets():
                for packet in vin.demux(vs):
                    if packet.dts is None and packet.pts is None:
                        continue  # the demuxer's empty flush packet
                    packet.stream = vout
                    yield float((packet.dts if packet.dts is not None else packet.pts) * vs.time_base), packet

            def chain():
                yield first
                yield from audio

            # one packet of each stream in hand at a time: memory stays flat on long clips
            for _t, packet in heapq.merge(video_packets(), chain(), key=lambda tp: tp[0]):
                out.mux(packet)
        return f"copied {name}" if name in MP4_AUDIO_COPY else f"re-encoded {name} to aac"
    finally:
        src.close()
