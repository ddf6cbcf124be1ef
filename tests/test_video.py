"""Video: sampling by timestamp with PyAV, limits, and both request forms end to end."""

import numpy as np
import openai
import pytest

from vlm_router.api.errors import APIError
from vlm_router.api.schema import parse_request
from vlm_router.media import MediaError
from vlm_router.media.video import Sampling, VideoLimits, decode_video, fit, timestamps

from .conftest import data_url, image_part, make_video, png_bytes, user

LIMITS = VideoLimits(max_duration_s=600, max_source_pixels=4096 * 4096)


def frame_indices(frames: np.ndarray) -> list[int]:
    """The index each sampled frame carries as its gray level."""
    return [round(float(f.mean()) / 2) for f in frames]


@pytest.mark.parametrize(
    ("fmt", "codec"),
    [("mp4", "libx264"), ("mov", "libx264"), ("matroska", "libx265"), ("webm", "libvpx"), ("webm", "libvpx-vp9"), ("avi", "mpeg4"), ("mp4", "libsvtav1")],
)
def test_containers_and_codecs(fmt, codec):
    frames = decode_video(make_video(2, fmt, codec), Sampling(fps=2, max_frames=64, max_pixels=10**6), LIMITS)
    assert frames.shape == (4, 64, 96, 3) and frames.dtype == np.uint8
    assert frame_indices(frames) == pytest.approx([0, 12.5, 25, 37.5], abs=1.5)


def test_frames_are_chosen_by_timestamp_at_the_requested_fps():
    video = make_video(4)
    assert frame_indices(decode_video(video, Sampling(fps=1, max_frames=64, max_pixels=10**6), LIMITS)) == pytest.approx([0, 25, 50, 75], abs=1)
    assert len(decode_video(video, Sampling(fps=4, max_frames=64, max_pixels=10**6), LIMITS)) == 16


def test_max_frames_spreads_samples_over_the_whole_video():
    frames = decode_video(make_video(4), Sampling(fps=10, max_frames=4, max_pixels=10**6), LIMITS)
    assert frame_indices(frames) == pytest.approx([0, 25, 50, 75], abs=1)


def test_sparse_samples_seek_and_stay_exact():
    # A keyframe every second and samples every 5 s: the sampler seeks between samples.
    video = make_video(20, gop=25, size=(64, 48))
    frames = decode_video(video, Sampling(fps=0.2, max_frames=64, max_pixels=10**6), LIMITS)
    assert [i % 128 for i in frame_indices(frames)] == pytest.approx([0, 125 % 128, 250 % 128, 375 % 128], abs=1)


def test_frames_are_resized_to_max_pixels_keeping_aspect():
    frames = decode_video(make_video(1, size=(320, 240)), Sampling(fps=1, max_frames=8, max_pixels=160 * 120), LIMITS)
    assert frames.shape[1:] == (120, 160, 3)
    assert fit(1280, 720, 360 * 420) == (518, 290)  # 150220 pixels, 16:9 kept
    assert fit(100, 50, 10**6) == (100, 50), "never scaled up"


def test_timestamps():
    assert timestamps(10, Sampling(fps=1, max_frames=64, max_pixels=1)) == [float(i) for i in range(10)]
    assert timestamps(0.2, Sampling(fps=1, max_frames=64, max_pixels=1)) == [0.0], "a short video still gives one frame"
    assert timestamps(100, Sampling(fps=2, max_frames=4, max_pixels=1)) == [0, 25, 50, 75]


@pytest.mark.parametrize("data", [b"", b"\x00" * 1000, b"not a video at all" * 50])
def test_garbage_is_a_400(data):
    with pytest.raises(MediaError) as caught:
        decode_video(data, Sampling(2, 8, 10**5), LIMITS)
    assert caught.value.status == 400


def test_a_codec_ffmpeg_cannot_decode_is_a_400():
    """A video stream whose codec FFmpeg does not know has no decoder context (found by the fuzz test)."""
    video = make_video(1).replace(b"avc1", b"zzzz")
    with pytest.raises(MediaError, match="codec cannot be decoded") as caught:
        decode_video(video, Sampling(2, 8, 10**5), LIMITS)
    assert caught.value.status == 400


def test_truncated_video_is_a_400():
    video = make_video(2)
    with pytest.raises(MediaError) as caught:
        decode_video(video[: len(video) // 3], Sampling(2, 8, 10**5), LIMITS)
    assert caught.value.status == 400


def test_limits_are_413():
    video = make_video(3, size=(96, 64))
    for limits, code in ((VideoLimits(2, 4096 * 4096), "video_too_long"), (VideoLimits(600, 96 * 63), "video_too_large")):
        with pytest.raises(MediaError) as caught:
            decode_video(video, Sampling(2, 8, 10**5), limits)
        assert (caught.value.status, caught.value.code) == (413, code)


@pytest.mark.parametrize(("value", "expected"), [(151200, 151200), ("360*420", 151200), (" 640 * 480 ", 307200), ("50000", 50000)])
def test_max_pixels_forms(value, expected):
    request = parse_request({"messages": [user({"type": "video_url", "video_url": {"url": "x"}, "max_pixels": value})]})
    assert request.messages[0].content[0].max_pixels == expected


@pytest.mark.parametrize("value", ["__import__('os').system('id')", "360*420*2", "1e9", "0x100", "-5", 10**9, 3, 1.5, True, "360 420"])
def test_max_pixels_is_parsed_strictly(value):
    with pytest.raises(APIError) as caught:
        parse_request({"messages": [user({"type": "video_url", "video_url": {"url": "x"}, "max_pixels": value})]})
    assert caught.value.param == "messages.0.content.0.max_pixels"


def video_part(url: str, **options) -> dict:
    return {"type": "video_url", "video_url": {"url": url}, **options}


VIDEO = data_url(make_video(4), "video/mp4")


def tokens(client, model: str, *parts) -> int:
    answer = client.chat.completions.create(model=model, messages=[user(*parts)], max_tokens=2, temperature=0)
    return answer.usage.prompt_tokens


def test_video_url_and_higher_fps_means_more_prompt_tokens(client):
    text_only = tokens(client, "tiny-qwen2-vl", "What happens?")
    one = tokens(client, "tiny-qwen2-vl", video_part(VIDEO, fps=1), "What happens?")
    four = tokens(client, "tiny-qwen2-vl", video_part(VIDEO, fps=4), "What happens?")
    assert text_only < one < four


def test_string_max_pixels_shrinks_frames(client):
    big = tokens(client, "tiny-qwen2-vl", video_part(VIDEO, fps=1, max_pixels="96*64"))
    small = tokens(client, "tiny-qwen2-vl", video_part(VIDEO, fps=1, max_pixels="56*56"))
    assert small < big


def test_video_over_http(client, media_server):
    clip = make_video(2, "webm", "libvpx-vp9")
    media_server.files["/clip.webm"] = (clip, "video/webm")
    by_url = tokens(client, "tiny-qwen2-vl", video_part(media_server.url + "/clip.webm", fps=2), "Describe.")
    assert by_url == tokens(client, "tiny-qwen2-vl", video_part(data_url(clip, "video/webm"), fps=2), "Describe.")
    assert by_url > tokens(client, "tiny-qwen2-vl", "Describe.")


def test_frame_list_is_one_video(client):
    frames = {"type": "video", "video": [data_url(png_bytes(64, 48, (i * 40, 0, 0))) for i in range(4)]}
    as_video = tokens(client, "tiny-qwen2-vl", frames, "What happens?")
    assert as_video > tokens(client, "tiny-qwen2-vl", "What happens?")
    assert tokens(client, "tiny-qwen2.5-vl", frames, "What happens?") > tokens(client, "tiny-qwen2.5-vl", "What happens?")


def test_family_taking_video_as_frames_gets_images(client):
    frames = [data_url(png_bytes(64, 48, (i * 40, 0, 0))) for i in range(2)]
    as_video = tokens(client, "video-as-frames", {"type": "video", "video": frames}, "Compare.")
    as_images = tokens(client, "video-as-frames", *[image_part(f) for f in frames], "Compare.")
    assert as_video == as_images


def test_frames_take_their_place_among_images():
    from vlm_router.api.messages import videos_as_images
    from vlm_router.conversation import Image, Message, Text, Video

    image, video = np.zeros((2, 2, 3)), np.stack([np.ones((2, 2, 3)), 2 * np.ones((2, 2, 3))])
    messages = [Message("user", [Video(0), Text("and"), Image(0)])]
    rewritten, images = videos_as_images(messages, [image], [video])
    assert rewritten[0].parts == [Image(0), Image(1), Text("and"), Image(2)]
    assert [float(i.mean()) for i in images] == [1.0, 2.0, 0.0]


def test_model_without_video_refuses_it(client):
    with pytest.raises(openai.BadRequestError) as caught:
        tokens(client, "no-video", video_part(VIDEO), "What happens?")
    assert caught.value.body["code"] == "capability_video"
    assert "does not accept video" in caught.value.body["message"]


@pytest.mark.parametrize(
    ("part", "param", "status"),
    [
        (video_part(VIDEO, max_pixels="__import__('os')"), "messages.0.content.0.max_pixels", 400),
        (video_part(data_url(b"\x00" * 64, "video/mp4")), "messages.0.content.0.video_url.url", 400),
        (video_part(data_url(b"", "video/mp4")), "messages.0.content.0.video_url.url", 400),
        (video_part(data_url(png_bytes(), "image/png")), "messages.0.content.0.video_url.url", 400),
        (video_part(VIDEO, max_pixels=4096 * 4096), "messages.0.content.0.max_pixels", 400),
        ({"type": "video", "video": [data_url(b"junk")]}, "messages.0.content.0.video.0", 400),
        ({"type": "video", "video": [data_url(png_bytes())] * 65}, "messages.0.content.0.video", 400),
        (video_part(data_url(make_video(1, size=(600, 2)), "video/mp4")), "messages.0.content.0", 400),
    ],
)
def test_bad_videos_are_4xx_naming_the_part(client, part, param, status):
    with pytest.raises(openai.APIStatusError) as caught:
        tokens(client, "tiny-qwen2-vl", part, "What happens?")
    assert caught.value.status_code == status
    assert caught.value.body["param"] == param


def test_frames_count_as_images_for_families_taking_frames(client):
    frames = {"type": "video", "video": [data_url(png_bytes(8, 8))] * 17}
    with pytest.raises(openai.BadRequestError) as caught:
        tokens(client, "video-as-frames", frames)
    assert caught.value.body["code"] == "too_many_images"
