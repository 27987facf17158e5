"""The render stage of closetai.analysis.video: the annotated H.264 mp4 of an analysed clip, with every
frame's overlays interpolated between the analysed frames (_InBetween) or only the analysed frames.

closetai.analysis.video re-exports these names, so imports from there keep working.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import cv2
import numpy as np

from closetai.media.video import H264Writer, VideoCorrupt, VideoInfo, VideoLimits, iter_frames
from closetai.vision.annotate import annotate
from closetai.vision.detections import Detections, decode_mask, mask_extent

if TYPE_CHECKING:  # annotations only: closetai.analysis.video imports this module
    from closetai.analysis.video import FrameResult, _Progress

# A track missed in up to this many analysed frames in a row still moves smoothly through the gap; a longer
# absence (it left the picture, or was hidden) shows no overlay until it is seen again.
INTERPOLATE_MAX_GAP = 3


def _warp_mask(crop: np.ndarray, at: tuple[int, int], src_box: np.ndarray, dst_box: np.ndarray,
               shape: tuple[int, int]) -> np.ndarray:
    """Full-frame bool mask: `crop` (a mask's tight extent, top-left at `at` = (y, x)) moved and scaled
    with its box from `src_box` to `dst_box` (x1, y1, x2, y2)."""
    h, w = shape
    sw, sh = max(src_box[2] - src_box[0], 1e-3), max(src_box[3] - src_box[1], 1e-3)
    kx, ky = (dst_box[2] - dst_box[0]) / sw, (dst_box[3] - dst_box[1]) / sh
    y0, x0 = at
    x1 = int(round(dst_box[0] + (x0 - src_box[0]) * kx))
    y1 = int(round(dst_box[1] + (y0 - src_box[1]) * ky))
    x2 = int(round(dst_box[0] + (x0 + crop.shape[1] - src_box[0]) * kx))
    y2 = int(round(dst_box[1] + (y0 + crop.shape[0] - src_box[1]) * ky))
    out = np.zeros(shape, dtype=bool)
    if x2 <= x1 or y2 <= y1:
        return out
    if (x2 - x1, y2 - y1) != (crop.shape[1], crop.shape[0]):
        crop = cv2.resize(crop.view(np.uint8), (x2 - x1, y2 - y1), interpolation=cv2.INTER_NEAREST).view(bool)
    cx1, cy1, cx2, cy2 = max(x1, 0), max(y1, 0), min(x2, w), min(y2, h)
    if cx2 > cx1 and cy2 > cy1:
        out[cy1:cy2, cx1:cx2] = crop[cy1 - y1:cy2 - y1, cx1 - x1:cx2 - x1]
    return out


class _InBetween:
    """Overlays for every frame of a clip from its analysed frames: each track's box interpolated
    linearly between the two analysed sightings around the frame, and the nearer sighting's mask moved
    and scaled with it. No overlay before a track's first sighting or after its last, in gaps longer
    than INTERPOLATE_MAX_GAP analysed frames, and no sliding across a shot cut (the nearer sighting's
    overlay is held instead). Masks are decoded once per sighting and dropped when passed: memory holds
    the frames' RLEs plus a few decoded crops."""

    def __init__(self, frames: list[FrameResult], cut_before: set[int], class_names: tuple[str, ...],
                 shape: tuple[int, int]):
        self.frames, self.cut_before, self.class_names, self.shape = frames, cut_before, class_names, shape
        self.sightings: dict[int, list[tuple[int, int, int]]] = {}  # track -> [(source index, frame pos, det)]
        for pos, fr in enumerate(frames):
            for j, tid in enumerate(fr.detections.track_ids):
                self.sightings.setdefault(int(tid), []).append((fr.source_index, pos, j))
        self.pointer = dict.fromkeys(self.sightings, 0)
        self.crops: dict[tuple[int, int], tuple[np.ndarray, tuple[int, int]] | None] = {}

    def _crop(self, pos: int, j: int):
        key = (pos, j)
        if key not in self.crops:
            fr = self.frames[pos]
            if not fr.mask_rles:
                self.crops[key] = None
            else:
                mask = decode_mask(fr.mask_rles[j])
                extent = mask_extent(mask)
                self.crops[key] = None if extent is None else (
                    mask[extent[0]:extent[1], extent[2]:extent[3]].copy(), (extent[0], extent[2]))
        return self.crops[key]

    def _cut_between(self, pos_a: int, pos_b: int) -> bool:
        return any(p in self.cut_before for p in range(pos_a + 1, pos_b + 1))

    def at(self, source_index: int) -> Detections:
        boxes, scores, classes, tids, masks = [], [], [], [], []
        oldest = None
        for tid, seen in self.sightings.items():
            if not seen[0][0] <= source_index <= seen[-1][0]:
                continue
            p = self.pointer[tid]
            while p + 1 < len(seen) and seen[p + 1][0] <= source_index:
                p += 1
            self.pointer[tid] = p
            src, pos, j = seen[p]
            fr = self.frames[pos]
            box = fr.detections.xyxy[j].astype(np.float64)
            if src != source_index:  # between two sightings
                src_b, pos_b, j_b = seen[p + 1]
                if pos_b - pos > INTERPOLATE_MAX_GAP:
                    continue
                u = (source_index - src) / (src_b - src)
                box_b = self.frames[pos_b].detections.xyxy[j_b].astype(np.float64)
                if self._cut_between(pos, pos_b):
                    if u >= 0.5:
                        src, pos, j, box = src_b, pos_b, j_b, box_b
                    shown = box
                else:
                    shown = (1 - u) * box + u * box_b
                    if u > 0.5:  # the nearer sighting's mask, class and score
                        src, pos, j, box = src_b, pos_b, j_b, box_b
            else:
                shown = box
            fr = self.frames[pos]
            oldest = seen[p][1] if oldest is None else min(oldest, seen[p][1])
            boxes.append(shown)
            scores.append(fr.detections.scores[j])
            classes.append(fr.detections.class_ids[j])
            tids.append(tid)
            crop = self._crop(pos, j)
            masks.append(np.zeros(self.shape, dtype=bool) if crop is None
                         else _warp_mask(crop[0], crop[1], box, shown, self.shape))
        if oldest is not None:  # crops of sightings every track has passed are not needed again
            for key in [k for k in self.crops if k[0] < oldest]:
                del self.crops[key]
        if not boxes:
            return Detections.empty(self.class_names, *self.shape)
        has_masks = any(fr.mask_rles for fr in self.frames)
        return Detections(np.array(boxes), np.array(scores), np.array(classes), self.class_names,
                          masks=np.stack(masks) if has_masks else None, track_ids=np.array(tids))


def _render(path, out, info: VideoInfo, limits: VideoLimits, frames: list[FrameResult], cut_before: set[int],
            class_names: tuple[str, ...], analysis_fps: float | None, all_frames: bool, error: str | None,
            progress: _Progress) -> str:
    """The render stage: the annotated H.264 mp4 at `out`. all_frames: every frame at the clip's rate,
    tracks' overlays interpolated between analysed frames (the clip is decoded a second time, so memory
    stays flat); else only the analysed frames, at the analysis rate (None: every frame was analysed).
    error: the analysis stopped at a corrupt frame, so the video stops at the last analysed one.
    -> what happened to the sound."""
    between = _InBetween(frames, cut_before, class_names, (info.height, info.width)) if all_frames else None
    rate = info.fps if (all_frames or analysis_fps is None) else analysis_fps
    with H264Writer(out, rate, audio_from=path if info.has_audio else None) as writer:
        last_source = frames[-1].source_index
        by_source = {f.source_index: f for f in frames}
        current = None
        try:
            for frame in iter_frames(path, None if all_frames else analysis_fps, limits, info):
                if frame.source_index > last_source and (error is not None or not all_frames):
                    break
                if frame.index % 8 == 0:
                    progress.check_stop()
                if between is not None:
                    shown = between.at(frame.source_index)
                else:
                    current = by_source.get(frame.source_index, current)
                    shown = current.with_masks()
                writer.write(annotate(frame.rgb, shown))
                progress.step()
        except VideoCorrupt:
            if error is None:  # decoding is deterministic: a clip that read fine once should again
                raise
    return writer.audio if info.has_audio else "none (the clip has no sound)"
