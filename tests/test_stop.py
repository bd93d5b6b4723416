"""Stop frees the CPU: closing a handler's generator (what gradio does on Stop or a closed tab) ends the
work at its next step, for Denoise, Compare and Memorize alike."""

import threading

import pytest

from diffusion_viz.ui.serving import Waiting, run_stoppable


def test_closing_the_generator_stops_the_work_at_its_next_step():
    steps, finished = [], threading.Event()

    def work(should_stop):
        try:
            for i in range(10_000):
                if should_stop():
                    return "stopped"
                steps.append(i)
                threading.Event().wait(0.005)
            return "ran to the end"
        finally:
            finished.set()

    gen = run_stoppable(work, tick=0.05)
    assert next(gen) == 0.0 and not steps  # the first message comes before the work starts
    assert isinstance(next(gen), Waiting) and steps  # it is running
    gen.close()  # gradio closes the generator when the user presses Stop
    assert finished.wait(30), "the work did not stop"
    n = len(steps)
    assert 0 < n < 10_000
    threading.Event().wait(0.1)
    assert len(steps) == n  # nothing more after it stopped


def test_result_and_errors_come_through():
    assert list(run_stoppable(lambda stop: 42, tick=0.01))[-1] == 42

    def boom(stop):
        raise ValueError("bad input")

    with pytest.raises(ValueError, match="bad input"):
        list(run_stoppable(boom))


def test_compare_ui_stops_its_columns(monkeypatch):
    """The Compare handler's work sees should_stop turn true once its generator is closed."""
    from diffusion_viz.ui import compare_tab, logic

    seen = {}
    done = threading.Event()

    def fake_run_compare(prompt, seed, model, columns, should_stop=None):
        seen["stop"] = should_stop
        while not should_stop():
            threading.Event().wait(0.01)
        done.set()
        raise AssertionError("never returned")

    monkeypatch.setattr(logic, "run_compare", fake_run_compare)
    flat = [True, "ddim", "cosine", 200, 1.0] + [False, "ddim", "cosine", 50, 1.0] * 3
    gen = compare_tab.compare_ui("cat", 0, "emoji-exact-32", *flat)
    first = next(gen)
    assert first[2].startswith(compare_tab.RUNNING)
    next(gen)  # the work has started
    gen.close()
    assert done.wait(30) and seen["stop"]()


def test_run_compare_returns_stopped_when_told(emoji_model_32):
    from diffusion_viz.errors import Stopped
    from diffusion_viz.ui import logic

    calls = []

    def stop_after_three():
        calls.append(1)
        return len(calls) > 3

    with pytest.raises(Stopped):
        logic.run_compare("cat", 0, "emoji-exact-32", [{"steps": 200}] * 4, should_stop=stop_after_three)
    assert len(calls) == 4  # checked before every step; stopped at the 4th check


def test_memorize_stops_between_steps():
    from diffusion_viz import memorize
    from diffusion_viz.errors import Stopped

    calls = []
    with pytest.raises(Stopped):
        memorize.run("rocket", 0, 200, 3.0, should_stop=lambda: calls.append(1) or len(calls) > 5)
    assert len(calls) == 6


def test_a_request_past_its_time_limit_stops_with_a_message():
    """The per-request wall-clock cap (limits.LIMITS.run_seconds; here 0.3 s): the work is told to stop
    and the user reads why."""
    from diffusion_viz.errors import Stopped

    def endless(should_stop):
        while not should_stop():
            threading.Event().wait(0.01)
        raise Stopped("stopped")

    with pytest.raises(Stopped, match="longer than this server's limit"):
        list(run_stoppable(endless, tick=0.05, seconds=0.3))
