"""The result cache: LRU within a byte budget, files owned and cleaned up, vanished files = a miss."""

import threading
from pathlib import Path

import numpy as np

from diffusion_viz.sampling import SampleSettings
from diffusion_viz.ui.cache import ResultCache, run_key


def _run(cache, name, nbytes=1000):
    directory = cache.new_directory()
    path = Path(directory) / f"{name}.gif"
    path.write_bytes(b"G" * nbytes)
    outputs = ("payload-" + name, np.zeros((4, 4, 3), np.uint8), {"n": name}, "", "done", [str(path)])
    return outputs, [str(path)], directory


def test_key_covers_every_setting():
    s = SampleSettings(prompt="cat", steps=10, seed=3).validated()
    keys = {run_key("m", s), run_key("other", s), run_key("m", SampleSettings(prompt="dog", steps=10, seed=3)),
            run_key("m", SampleSettings(prompt="cat", steps=10, seed=3, karras=True)),
            run_key("m", SampleSettings(prompt="cat", steps=10, seed=3, zero_terminal_snr=True)),
            run_key("m", SampleSettings(prompt="cat", steps=10, seed=3, guidance=2.0))}
    assert len(keys) == 6 and run_key("m", s) == run_key("m", SampleSettings(prompt="cat", steps=10, seed=3))


def test_hit_miss_lru_and_byte_budget(tmp_path):
    cache = ResultCache(max_bytes=5000, root=tmp_path)
    assert cache.get("a") is None
    outs, files, d = _run(cache, "a")
    assert cache.put("a", outs, files, d) and cache.get("a")[0] == "payload-a"
    for name in "bcd":
        cache.put(name, *_run(cache, name))
    cache.get("b")  # b is now the most recent
    cache.put("e", *_run(cache, "e", nbytes=2500))  # over budget: the least recently used go first
    assert cache.nbytes <= 5000 and cache.get("b") is not None and cache.get("e") is not None
    assert cache.get("a") is None
    cache.clear()
    assert len(cache) == 0 and not Path(d).exists()  # evicted files are deleted (after a grace period)


def test_vanished_files_are_a_miss_and_oversized_runs_are_not_kept(tmp_path):
    cache = ResultCache(max_bytes=10_000, root=tmp_path)
    outs, files, d = _run(cache, "a")
    cache.put("a", outs, files, d)
    Path(files[0]).unlink()  # e.g. someone cleaned the temp folder
    assert cache.get("a") is None
    outs, files, d = _run(cache, "big", nbytes=20_000)
    assert not cache.put("big", outs, files, d) and not Path(d).exists()
    assert not cache.put("none", None, [], cache.new_directory())  # a failed run stores nothing
    assert ResultCache(max_bytes=0, root=tmp_path).enabled is False


def test_thread_safe_under_concurrent_use(tmp_path):
    cache = ResultCache(max_bytes=20_000, root=tmp_path)

    def worker(k):
        for i in range(30):
            key = f"{k}-{i % 7}"
            if cache.get(key) is None:
                cache.put(key, *_run(cache, key, nbytes=500))
    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert 0 < cache.nbytes <= 20_000 and cache.stats()["hits"] > 0
