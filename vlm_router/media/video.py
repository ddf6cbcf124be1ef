"""Sampling frames from a video file by timestamp with PyAV, decoding only what the samples need."""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import av
import numpy as np

from . import MediaError

#: Never seek for a gap shorter than this: decoding on is cheaper than a seek and a new keyframe.
MIN_SEEK_GAP_S = 1.0
#: Frames no other frame depends on are skipped unless a sample is due within this many seconds or
#: frames, whichever is longer: more than a decoder's reordering delay, so the frame at the sample
#: time is always decoded.
FULL_DECODE_S, FULL_DECODE_FRAMES = 0.5, 8


@dataclass(frozen=True)
class Sampling:
    """How to sample one video: frames per second, at most `max_frames`, each within `max_pixels`."""

    fps: float
    max_frames: int
    max_pixels: int


@dataclass(frozen=True)
class VideoLimits:
    max_duration_s: float
    max_source_pixels: int


def fit(width: int, height: int, max_pixels: int) -> tuple[int, int]:
    """`width`x`height` scaled down (never up) to at most `max_pixels`, aspect kept, sides even."""
    scale = min(1.0, math.sqrt(max_pixels / (width * height)))
    return max(2, int(width * scale) // 2 * 2), max(2, int(height * scale) // 2 * 2)


def timestamps(duration: float, sampling: Sampling) -> list[float]:
    """Times to take frames at: every 1/fps seconds, or `max_frames` spread over the whole video."""
    count = max(1, min(sampling.max_frames, math.floor(duration * sampling.fps)))
    step = duration / count if duration * sampling.fps > sampling.max_frames else 1 / sampling.fps
    return [i * step for i in range(count)]


def decode_video(data: bytes, sampling: Sampling, limits: VideoLimits) -> np.ndarray:
    """`(frames, H, W, 3)` uint8 RGB frames sampled from the video in `data`."""
    try:
        container = av.open(io.BytesIO(data), mode="r", metadata_errors="ignore")
    except (av.FFmpegError, ValueError, UnicodeDecodeError) as exc:
        raise MediaError(f"the video cannot be read: {_reason(exc)}") from None
    with container:
        if not container.streams.video:
            raise MediaError("the file has no video stream")
        stream = container.streams.video[0]
        if stream.codec_context is None:  # a codec FFmpeg cannot decode
            raise MediaError("the video's codec cannot be decoded")
        stream.thread_type = "AUTO"
        width, height = stream.codec_context.width, stream.codec_context.height
        if not width or not height:
            raise MediaError("the video's frame size is unknown")
        if width * height > limits.max_source_pixels:
            raise MediaError(f"video frames are {width}x{height}, over the limit of {limits.max_source_pixels} pixels", 413, "video_too_large")
        duration = _duration(container, stream)
        if duration > limits.max_duration_s:
            raise MediaError(f"the video lasts {duration:.0f} s, over the limit of {limits.max_duration_s:g} s", 413, "video_too_long")
        size = fit(width, height, sampling.max_pixels)
        try:
            frames = _sample(container, stream, timestamps(duration, sampling), size)
        except (av.FFmpegError, ValueError) as exc:
            raise MediaError(f"the video cannot be decoded: {_reason(exc)}") from None
    if not frames:
        raise MediaError("no frame of the video could be decoded")
    return np.stack(frames)


def _duration(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> float:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    raise MediaError("the video's duration is unknown")


def _sample(container: av.container.InputContainer, stream: av.video.stream.VideoStream, targets: list[float], size: tuple[int, int]) -> list[np.ndarray]:
    """The first frame at or after each target time.

    Decoding goes forward. It seeks to a target only when the target is more than a second ahead
    and further from the last keyframe than the longest keyframe interval seen while decoding, so a
    newer keyframe surely lies before it; until two keyframes have been decoded in a row it does not
    seek at all. Between samples the decoder skips non-reference frames, which nothing else needs.
    """
    frames: list[np.ndarray] = []
    decoded = container.decode(stream)
    position = -math.inf  # of the last decoded frame
    last_key: float | None = None  # of the last decoded keyframe
    longest_gop: float | None = None
    contiguous = False  # no seek since `last_key`
    time_base = stream.time_base  # None where the stream has none: then it cannot seek, and decodes on
    start = float(stream.start_time * time_base) if stream.start_time is not None and time_base is not None else 0.0
    half_frame = 0.5 / float(stream.average_rate) if stream.average_rate else 0.0
    context = stream.codec_context
    near = max(FULL_DECODE_S, FULL_DECODE_FRAMES * 2 * half_frame)
    for target in targets:
        if time_base is not None and _worth_seeking(target, position, last_key, longest_gop):
            try:
                container.seek(int((start + target) / time_base), stream=stream, backward=True)
                decoded, contiguous = container.decode(stream), False
            except av.FFmpegError:
                pass  # not seekable: decode on
        for frame in decoded:
            if frame.time is None:
                continue
            position = frame.time - start
            context.skip_frame = "DEFAULT" if target - position <= near else "NONREF"
            if frame.key_frame:
                if contiguous and last_key is not None and position > last_key:
                    longest_gop = max(longest_gop or 0.0, position - last_key)
                last_key, contiguous = position, True
            if position + half_frame >= target:
                frames.append(frame.reformat(width=size[0], height=size[1], format="rgb24").to_ndarray())
                break
        else:
            break  # the stream ended before this target
    return frames


def _worth_seeking(target: float, position: float, last_key: float | None, longest_gop: float | None) -> bool:
    if last_key is None or longest_gop is None:
        return False
    return target - position > MIN_SEEK_GAP_S and target - last_key > longest_gop


def _reason(exc: Exception) -> str:
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
