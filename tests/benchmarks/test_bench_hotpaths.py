"""The candidate fix benchmarked in bench_hotpaths must not change results: same pixel rows."""

import torch
from bench_hotpaths import dedup_pixel_inputs


class _Img:  # stands for a PIL image: only its identity and size matter here
    def __init__(self, rows):
        self.rows = rows


def _fake_pixel_inputs(calls):
    def pixel_inputs(images):
        calls.append(len(images))
        grid = torch.tensor([[1, im.rows, 1] for im in images])
        values = torch.cat([torch.full((im.rows, 3), float(id(im) % 9973)) for im in images])
        return {"pixel_values": values, "image_grid_thw": grid}
    return pixel_inputs


def test_dedup_pixel_inputs_equals_the_original_and_processes_each_image_once():
    a, b, c = _Img(4), _Img(2), _Img(6)
    batch = [a, b, a, c, a, b]
    calls: list[int] = []
    ref = _fake_pixel_inputs([])(batch)
    got = dedup_pixel_inputs(_fake_pixel_inputs(calls))(batch)
    assert calls == [3]
    assert torch.equal(ref["pixel_values"], got["pixel_values"])
    assert torch.equal(ref["image_grid_thw"], got["image_grid_thw"])
