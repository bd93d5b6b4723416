"""A small upload must not cost gigabytes: peak memory per accepted photo stays under 150 MB, and only
LIMITS.uploads_in_flight photos decode at once.

Each photo is made in one process and loaded in a fresh one, whose peak resident memory (ru_maxrss) is
read before and after: a measurement of memory, not of time.
"""

import subprocess
import sys
import threading
import time

import pytest

from diffusion_viz import images
from diffusion_viz.errors import ImageInputError
from diffusion_viz.limits import LIMITS

MAKE = r"""
import sys, numpy as np
from PIL import Image
kind, side, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
y, x = np.mgrid[0:side, 0:side]
if kind == "gray16":  # the issue's case: a 111 KB 16-bit PNG that decodes to 98 MB
    Image.fromarray(((x * 65535) // side).astype(np.uint16)).save(path)
elif kind == "rgba":
    Image.new("RGBA", (side, side), (10, 200, 30, 128)).save(path)
elif kind == "palette":
    Image.new("P", (side, side), 3).save(path)
elif kind == "jpeg":
    rgb = np.stack([x * 255 // side, y * 255 // side, np.zeros_like(x)], -1).astype(np.uint8)
    Image.fromarray(rgb).save(path, quality=90)
"""

MEASURE = r"""
import resource, sys
from diffusion_viz.images import load_image
data = open(sys.argv[1], "rb").read()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    shape = load_image(data).shape
except Exception as exc:
    shape = type(exc).__name__
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print((after - before) / 1024, shape)
"""


def _peak_mb(tmp_path, kind, side):
    path = tmp_path / f"{kind}-{side}.{'jpg' if kind == 'jpeg' else 'png'}"
    subprocess.run([sys.executable, "-c", MAKE, kind, str(side), str(path)], check=True)
    out = subprocess.run([sys.executable, "-c", MEASURE, str(path)], check=True, capture_output=True, text=True)
    mb, shape = out.stdout.split(maxsplit=1)
    return float(mb), shape.strip(), path.stat().st_size


@pytest.mark.slow
@pytest.mark.parametrize("kind, side", [("gray16", 7000), ("rgba", 5100), ("palette", 6000), ("jpeg", 6000)])
def test_peak_memory_of_an_accepted_photo_is_bounded(tmp_path, kind, side):
    mb, shape, size = _peak_mb(tmp_path, kind, side)
    assert shape == "(1024, 1024, 3)", shape
    assert mb <= 150, f"{kind} {side}x{side} ({size / 1024:.0f} KB file) took +{mb:.0f} MB"


def test_a_photo_whose_pixels_would_not_fit_is_refused_before_decoding(tmp_path):
    from PIL import Image

    path = tmp_path / "big.png"
    Image.new("RGBA", (5300, 5300)).save(path)  # 107 MB as RGBA: over the 100 MB budget
    with pytest.raises(ImageInputError, match=r"5300 x 5300 pixels; opening it would need about 107 MB"):
        images.load_image(str(path))


def test_only_a_few_photos_decode_at_once(monkeypatch, tmp_path):
    from PIL import Image

    running, peak, lock = [0], [0], threading.Lock()
    real_open = images._open

    def slow_open(source, max_side=images.MAX_SIDE):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        try:
            time.sleep(0.05)
            return real_open(source, max_side)
        finally:
            with lock:
                running[0] -= 1

    monkeypatch.setattr(images, "_open", slow_open)
    path = tmp_path / "p.png"
    Image.new("RGB", (40, 30), (1, 2, 3)).save(path)
    threads = [threading.Thread(target=images.load_image, args=(str(path),)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert peak[0] == LIMITS.uploads_in_flight == 2
