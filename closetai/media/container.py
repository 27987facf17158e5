"""Opening a video file safely, and the errors every video function raises (closetai.media.video reads,
closetai.media.encode writes; both import these, so neither imports the other at load time)."""

from __future__ import annotations

import os
from pathlib import Path

import av

from closetai import ClosetAIError

# Audio codecs copied into an MP4 as they are (Chrome, Firefox and Safari all play them there); any other
# (PCM from a camera's mov, Vorbis/Opus from a webm, AMR from an old phone) is re-encoded to AAC.
MP4_AUDIO_COPY = {"aac", "mp3"}
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
