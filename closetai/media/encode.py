"""Video out with PyAV: H.264 mp4 (yuv420p, faststart) written atomically, with the source clip's sound
added (copied when MP4 takes its codec, else re-encoded to AAC).

Split from closetai.media.video (reading) to keep each under ~500 lines; that module re-exports these
names, and both log as "closetai.media.video" so one logger setting covers video in and out.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import tempfile
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from closetai.media.container import MP4_AUDIO_COPY, VideoError, _open

log = logging.getLogger("closetai.media.video")


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
