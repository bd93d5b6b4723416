"""The result cache: LRU within a byte budget, files owned and cleaned up, vanished files = a miss."""

import threading
from pathlib import Path

import numpy as np
import pytest

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


def _entry_bytes(tmp_path, nbytes=1000) -> int:
    """What one ``_run`` entry counts (its outputs in memory plus its file), measured in a spare cache."""
    spare = ResultCache(max_bytes=10**6, root=tmp_path / "spare")
    spare.put("x", *_run(spare, "x", nbytes=nbytes))
    return spare.nbytes


def test_hit_miss_lru_and_byte_budget(tmp_path):
    unit = _entry_bytes(tmp_path)
    budget = 4 * unit + unit // 2  # four entries fit, not five
    cache = ResultCache(max_bytes=budget, root=tmp_path)
    assert cache.get("a") is None
    outs, files, d = _run(cache, "a")
    assert cache.put("a", outs, files, d) and cache.get("a")[0] == "payload-a"
    for name in "bcd":
        cache.put(name, *_run(cache, name))
    cache.get("b")  # b is now the most recent
    cache.put("e", *_run(cache, "e", nbytes=2500))  # over budget: the least recently used go first
    assert cache.nbytes <= budget and cache.get("b") is not None and cache.get("e") is not None
    assert cache.get("a") is None
    cache.clear()
    assert len(cache) == 0 and not Path(d).exists()  # evicted files are deleted (after a grace period)


def test_a_hit_returns_the_stored_run_and_counts(tmp_path):
    """Same key twice: the first get is a miss, then the stored outputs come back (the same objects, the
    same file bytes) and the hit counter moves; another key is still a miss."""
    cache = ResultCache(max_bytes=100_000, root=tmp_path)
    key = run_key("m", SampleSettings(prompt="cat", steps=10, seed=3).validated())
    assert cache.get(key) is None and cache.stats()["misses"] == 1 and cache.stats()["hits"] == 0
    outs, files, d = _run(cache, "a", nbytes=1234)
    assert cache.put(key, outs, files, d)
    first = cache.get(key)
    second = cache.get(run_key("m", SampleSettings(prompt="cat", steps=10, seed=3).validated()))  # equal key
    assert first is second and all(a is b for a, b in zip(first, outs)) and len(first) == len(outs)
    assert Path(first[5][0]).read_bytes() == b"G" * 1234
    assert cache.get(run_key("m", SampleSettings(prompt="cat", steps=10, seed=4).validated())) is None
    assert cache.stats() == {"entries": 1, "bytes": cache.nbytes, "max_bytes": 100_000, "hits": 2, "misses": 2}
    assert cache.nbytes >= 1234  # the files count towards the budget


def test_eviction_by_bytes_is_least_recently_used_first(tmp_path):
    """Entries of equal size (1000-byte file + outputs) in a budget of 4.5 of them: four fit, the fifth
    pushes out the least recently *used* (not the oldest), its files are removed after the grace period."""
    unit = _entry_bytes(tmp_path)
    budget = 4 * unit + unit // 2
    cache = ResultCache(max_bytes=budget, root=tmp_path)
    dirs = {}
    for name in "abcd":
        outs, files, dirs[name] = _run(cache, name, nbytes=1000)
        assert cache.put(name, outs, files, dirs[name])
    assert len(cache) == 4 and cache.nbytes == pytest.approx(4 * unit, abs=64)  # paths differ by a few bytes
    per_entry = cache.nbytes / 4
    assert cache.get("a") is not None  # a is now the most recent; b is the least recently used
    outs, files, dirs["e"] = _run(cache, "e", nbytes=1000)
    assert cache.put("e", outs, files, dirs["e"])
    assert len(cache) == 4 and cache.nbytes <= budget and cache.nbytes == pytest.approx(4 * per_entry, abs=8)
    assert cache.get("b") is None and all(cache.get(k) is not None for k in "acde")
    assert Path(dirs["b"]).exists()  # a reply being sent may still read it: removed after a grace period
    outs, files, dirs["big"] = _run(cache, "big", nbytes=1000 + 2 * unit + unit // 4)  # 3.25 entries
    assert cache.put("big", outs, files, dirs["big"])
    assert cache.nbytes <= budget and set(k for k in "acde" if cache.get(k) is not None) == {"e"}
    cache.clear()
    assert len(cache) == 0 and cache.nbytes == 0 and cache.stats()["hits"] == 0
    assert not any(Path(d).exists() for d in dirs.values())


def test_the_same_run_stored_twice_keeps_the_first(tmp_path):
    """Two users finish the same run: the first stored copy stays, the second's folder is thrown away."""
    cache = ResultCache(max_bytes=10_000, root=tmp_path)
    outs1, files1, d1 = _run(cache, "a")
    outs2, files2, d2 = _run(cache, "a")
    assert cache.put("k", outs1, files1, d1) and cache.put("k", outs2, files2, d2)
    assert cache.get("k")[0] is outs1[0] and len(cache) == 1
    nbytes = cache.nbytes
    cache.clear()
    assert nbytes < 2 * 1000 and not Path(d2).exists() and not Path(d1).exists()


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
    # room for all 28 keys (4 workers x 7), measured: each worker's 8th get finds its own first entry, so
    # there are hits however the threads interleave (a fixed 20 kB held ~7 entries: hits were luck, and a CI
    # run saw none)
    budget = 30 * _entry_bytes(tmp_path, nbytes=500)
    cache = ResultCache(max_bytes=budget, root=tmp_path / "cache")

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
    assert 0 < cache.nbytes <= budget and cache.stats()["hits"] > 0


@pytest.fixture
def results():
    """The app's shared cache, emptied before and after the test (no state from or for other tests)."""
    from diffusion_viz.ui.cache import RESULTS

    RESULTS.clear()
    try:
        yield RESULTS
    finally:
        RESULTS.clear()


def test_the_app_serves_a_repeated_run_from_the_cache(results):
    """The same Generate twice: the second is a hit (no sampling), with the first run's outputs; the
    GIF/MP4 asked for twice are the same files with the same bytes."""
    from diffusion_viz.ui import denoise_tab

    args = ("cat", 4, 987_654, 1.0, "ddim", "cosine", "emoji-exact-32")
    stats = denoise_tab.RUN_STATS
    runs, hits = stats["runs"], stats["cache_hits"]
    first = list(denoise_tab.generate(*args))[-1]
    assert results.stats()["hits"] == 0 and results.stats()["misses"] == 1 and len(results) == 1
    replay = list(denoise_tab.generate(*args))
    assert len(replay) == 1  # the whole run at once: nothing streamed, nothing sampled
    second = replay[0]
    assert results.stats()["hits"] == 1 and stats["runs"] == runs + 1 and stats["cache_hits"] == hits + 1
    assert second[0] == first[0] and second[1] is first[1] and second[2] is first[2]
    assert "served from the cache" in second[4].lower() and "cache" not in first[4].lower()
    other = list(denoise_tab.generate(*args[:2], 987_655, *args[3:]))[-1]  # another seed: computed
    assert stats["runs"] == runs + 2 and other[0] != first[0] and results.stats()["hits"] == 1

    files = list(denoise_tab.make_downloads(*args))[-1]  # a generator: progress, then the files
    made = [Path(f).read_bytes() for f in files]
    again = list(denoise_tab.make_downloads(*args))[-1]
    assert results.stats()["hits"] == 2 and again == files and len(files) == 2
    assert [Path(f).read_bytes() for f in again] == made
    assert [Path(f).suffix for f in files] == [".gif", ".mp4"]
    assert all(Path(f).stat().st_size > 1000 for f in files)


def test_an_entry_is_counted_at_what_it_costs_in_memory():
    """The budget is in bytes of memory: a run's summary (dicts and lists of per-step floats) costs several
    times its numbers' 8 bytes. The count agrees with what Python allocated for it (tracemalloc)."""
    import tracemalloc

    from diffusion_viz.ui.cache import _size_of

    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        summary = {"steps": [{"t": float(i), "abar": i / 1000.0, "name": f"step {i}"} for i in range(500)],
                   "payload": "x" * 50_000, "final": np.arange(3 * 32 * 32, dtype=np.uint8).reshape(32, 32, 3)}
        allocated = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert 0.8 * allocated <= _size_of((summary,)) <= 1.2 * allocated
