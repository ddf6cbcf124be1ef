"""How many prompt tokens one image adds under each published processor, written from its rules.

Each function answers for one image of `width` x `height` pixels: the prompt tokens a request with that
image has, minus those of the same request without it (the image's tag and the newline after it
replaced by what the published processor expands them to).
"""

from __future__ import annotations


def internvl_chat(width: int, height: int, tile: int = 448, min_num: int = 1, max_num: int = 12) -> int:
    """InternVL2's `dynamic_preprocess` (InternVL2-4B: `min_dynamic_patch` 1, `max_dynamic_patch` 12, `use_thumbnail`).

    The image is resized to a `cols` x `rows` grid of 448-pixel tiles: of the grids with `min_num` to `max_num`
    tiles, ordered by tile count, the one whose `cols / rows` is closest to `width / height`; on a tie a larger
    grid replaces the one found only if the image's area is over half of the grid's pixels. More than one tile
    adds a thumbnail of the whole image. Each tile is 256 `<IMG_CONTEXT>` tokens ((448 / 14)^2 patches, pixel
    shuffle 0.5), and chat() replaces `<image>` with `<img>` + those tokens + `</img>`: the newline after the
    tag stays, one token, so `<image>\n` becomes 256 x tiles + 3 tokens.
    """
    grids = sorted(
        {(cols, rows) for cols in range(1, max_num + 1) for rows in range(1, max_num + 1) if min_num <= cols * rows <= max_num},
        key=lambda grid: grid[0] * grid[1],
    )
    best, best_diff = (1, 1), float("inf")
    for cols, rows in grids:
        diff = abs(width / height - cols / rows)
        if diff < best_diff or (diff == best_diff and width * height > 0.5 * tile * tile * cols * rows):
            best, best_diff = (cols, rows), diff
    tiles = best[0] * best[1]
    if tiles > 1:
        tiles += 1  # the thumbnail
    return 256 * tiles + 3


def phi3_v(width: int, height: int, num_crops: int = 4, crop: int = 336) -> int:
    """Phi-3.5-vision's `Phi3VImageProcessor` (Phi-3.5-vision-instruct: `num_crops` 4), its `HD_transform`.

    With `ratio` = long side / short side, `scale` is the largest number of 336-pixel crops along the long side
    with `scale * ceil(scale / ratio) <= num_crops`; the image is resized to `scale * 336` pixels along its long
    side and `int(scale * 336 / ratio)` along the short one, then padded to a multiple of 336 there: `h` x `w`
    crops. Each crop's 24x24 patches merge 2x2 into 12x12 tokens; the crops make `h * 12` rows of `w * 12`
    tokens and a `sub_GN` each, then come one `glb_GN` and the global 336-pixel view's 12 rows of 12 and a
    `sub_GN`: `num_img_tokens = (h * w + 1) * 144 + 1 + (h + 1) * 12`. The processor splits the prompt at each
    `<|image_N|>` and tokenizes the pieces one by one, each opening with `<s>` (the LLaMA tokenizer's
    `add_bos_token`), the image's tokens between them: the tag becomes those tokens and one `<s>`, and the
    newline after it stays, one token.
    """
    import math

    ratio = max(width, height) / min(width, height)
    scale = 1
    while (scale + 1) * math.ceil((scale + 1) / ratio) <= num_crops:
        scale += 1
    long, short = scale, math.ceil(int(scale * crop / ratio) / crop)
    h, w = (short, long) if width >= height else (long, short)
    return (h * w + 1) * 144 + 1 + (h + 1) * 12 + 2


def minicpmv(width: int, height: int, scale_resolution: int = 448, max_slice_nums: int = 9, query_num: int = 64) -> int:
    """MiniCPM-V-2.6's image processor (`get_sliced_grid`, `get_slice_image_placeholder`, `use_image_id`).

    The whole image, resized to about `scale_resolution`², is always one `<image>` + 64 `<unk>` + `</image>`,
    after `<image_id>0</image_id>` (the first image's number: one digit token). An image over `scale_resolution`²
    pixels is also cut into slices: `multiple` = its area over `scale_resolution`², rounded up, at most
    `max_slice_nums`; of the `cols` x `rows` grids of `multiple` - 1, `multiple` or `multiple` + 1 slices
    (1 and more than `max_slice_nums` left out), the first whose log(cols / rows) is closest to
    log(width / height). Each slice is `<slice>` + 64 `<unk>` + `</slice>`, a row of slices after another
    separated by a newline (one token). The processor replaces `(<image>./</image>)` only: the newline after it in
    chat()'s `image\\ntext` content stays, one token more than the same request without the image.
    """
    import math

    multiple = min(math.ceil(width * height / scale_resolution**2), max_slice_nums)
    slices = rows = 0
    if multiple > 1:
        counts = [n for n in (multiple - 1, multiple, multiple + 1) if 1 < n <= max_slice_nums]
        grids = [(cols, n // cols) for n in counts for cols in range(1, n + 1) if n % cols == 0]
        cols, rows = min(grids, key=lambda grid: abs(math.log(width / height) - math.log(grid[0] / grid[1])))
        slices = cols * rows
    image_id = 3  # <image_id> 0 </image_id>
    return image_id + (query_num + 2) * (1 + slices) + max(rows - 1, 0) + 1


BY_MODEL_TYPE = {"internvl_chat": internvl_chat, "phi3_v": phi3_v, "minicpmv": minicpmv}
