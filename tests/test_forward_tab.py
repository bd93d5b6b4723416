"""The Forward tab's own logic: the histogram's subsample, the pixel it explains, the four-schedule limit."""

import numpy as np
import pytest

from diffusion_viz.ui import logic
from diffusion_viz.ui.forward_tab import forward_noise, histogram_values, limit_schedules


@pytest.mark.parametrize("h, w", [(480, 640), (768, 1024), (300, 301)])
def test_histogram_keeps_every_channel(h, w):
    """A webcam's 640x480 photo gave a stride of 15 over the flat array: red values only."""
    rgb = np.zeros((h, w, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 255, 0, 128  # R -> +1, G -> -1, B -> +0.004
    result = logic.forward_outputs(rgb, 10, ["linear"], 0)
    values = histogram_values(rgb, result, 10)
    photo = values["photo"]
    counts = [np.sum(np.isclose(photo, v, atol=1e-5)) for v in (1.0, -1.0, 128 / 127.5 - 1)]
    assert counts[0] == counts[1] == counts[2] > 0 and sum(counts) == photo.size
    assert photo.size <= 2 * 60_000 and photo.size % 3 == 0
    noised = values["linear at t=10"].reshape(-1, 3)
    # every channel of the noised subsample sits near its own clean value (t = 10: little noise)
    assert np.allclose(noised.mean(0), [1, -1, 0.004], atol=0.05)


def test_forward_noise_reports_the_pixel_it_explains(tmp_path):
    rgb = np.zeros((40, 60, 3), np.uint8)
    rgb[7, 5] = (255, 0, 0)
    from PIL import Image

    path = tmp_path / "p.png"
    Image.fromarray(rgb).save(path)
    out = forward_noise(str(path), 100, ["cosine"], 0, None, None, state=None)
    *_, px, py, state = out
    assert (px, py) == (30, 20)  # the centre, shown in the boxes (they said -1 before)
    out = forward_noise(str(path), 100, ["cosine"], 0, 5, 7, state=state)
    assert out[-3:-1] == (5, 7) and list(out[5]["schedules"][0]["rgb"]) == [255, 0, 0]


def test_a_fifth_schedule_is_undone_and_the_other_four_stay():
    four = ["linear", "scaled_linear", "cosine", "sigmoid"]
    assert limit_schedules(four, four[:3]) == (four, four)
    kept, state = limit_schedules(four + ["laplace"], four)
    assert kept == four == state
