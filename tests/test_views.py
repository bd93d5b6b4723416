"""Links to a view: what "Copy link" writes reads back as the same view; any other link is read leniently
(clamped or dropped, with a note), never fails and never becomes markup. Every stop of the shipped lesson
round-trips through a link, and its Compare columns come out as the lesson wrote them."""

import html
from urllib.parse import parse_qs

import pytest

from diffusion_viz.lessons import default_lesson
from diffusion_viz.limits import LIMITS
from diffusion_viz.ui import views
from diffusion_viz.ui.app import current_link, open_from_url
from diffusion_viz.ui.lesson_mode import stops


def _as_list(v):
    return v if isinstance(v, list) else [v]


def test_every_stop_of_the_lesson_round_trips_through_a_link():
    for stop in stops():  # the stops this server offers (no Stable Diffusion one by default)
        query = views.link_query(stop.tab, stop.settings)
        tab, settings, notes = views.parse_link(query)
        assert tab == stop.tab
        assert notes == ([views.PHOTO_NOTE] if tab == "forward" else []), query
        for key, want in stop.settings.items():
            got = settings[key]
            if tab == "compare" and key in views.COLUMN_KEYS:
                assert got == [type(w)(g) for g, w in zip(got, _as_list(want))] and got == _as_list(want)
            else:
                assert got == want and type(got) is type(want), (key, got, want)


def test_compare_columns_repeat_a_single_value_and_a_short_list():
    lesson = default_lesson()
    samplers = next(s for s in lesson.stops if s.tab == "compare" and isinstance(s.settings["sampler"], list))
    _, settings, _ = views.parse_link(views.link_query("compare", samplers.settings))
    columns = views.compare_columns(settings)
    assert [(c["sampler"], c["steps"]) for c in columns] == list(zip(samplers.settings["sampler"],
                                                                    samplers.settings["steps"]))
    assert {c["schedule"] for c in columns} == {samplers.settings["schedule"]}
    # a single value given as a plain (non-list) setting is every column's, not the default's
    columns = views.compare_columns({"schedule": ["cosine", "linear"], "sampler": "euler", "steps": 7})
    assert [(c["sampler"], c["schedule"], c["steps"]) for c in columns] == [("euler", "cosine", 7),
                                                                           ("euler", "linear", 7)]
    assert views.compare_columns({"steps": [10, 20, 30], "sampler": ["ddim"]})[2]["sampler"] == "ddim"


@pytest.mark.parametrize("query, key, value, note", [
    ("tab=denoise&steps=5000", "steps", LIMITS.steps, "outside 1..%d: set to %d" % (LIMITS.steps, LIMITS.steps)),
    ("tab=denoise&steps=0", "steps", 1, "set to 1"),
    ("tab=denoise&seed=-4", "seed", 0, "set to 0"),
    ("tab=denoise&guidance=99", "guidance", views.MAX_GUIDANCE_UI, "set to 15"),
    ("tab=forward&t=1500", "t", 999, "set to 999"),
    ("tab=denoise&steps=abc", "steps", None, "not a number"),
    ("tab=denoise&steps=2.5", "steps", None, "not a whole number"),
    ("tab=denoise&steps=nan", "steps", None, "not a finite number"),
    ("tab=denoise&sampler=magic", "sampler", None, "Unknown sampler 'magic'"),
    ("tab=denoise&schedule=wiggly", "schedule", None, "Unknown noise schedule"),
    ("tab=denoise&model=gpt-9", "model", None, "Unknown model"),
    ("tab=denoise&model=sd15", "model", None, "does not offer the model 'sd15'"),
    ("tab=denoise&t=5", "t", None, "does not belong to the denoise tab"),
    ("tab=denoise&colour=red", "colour", None, "Unknown setting 'colour'"),
])
def test_bad_links_are_clamped_or_dropped_with_a_note(query, key, value, note):
    tab, settings, notes = views.parse_link(query)
    assert settings.get(key) == value
    assert any(note in n for n in notes), notes


def test_unknown_tabs_open_denoise_and_extra_columns_and_schedules_are_cut():
    assert views.parse_link("tab=admin")[0] == "denoise"
    assert "Unknown tab 'admin'" in views.parse_link("tab=admin")[2][0]
    _, s, notes = views.parse_link("tab=compare&steps=" + ",".join(["10"] * (LIMITS.columns + 3)))
    assert s["steps"] == [10] * LIMITS.columns and any("columns" in n for n in notes)
    _, s, notes = views.parse_link("tab=forward&schedules=linear,cosine,linear,cosine,scaled_linear")
    assert len(s["schedules"]) == 4 and any("At most 4" in n for n in notes)
    long = "a" * 1500
    _, s, notes = views.parse_link("tab=denoise&prompt=" + long)
    assert len(s["prompt"]) < len(long) and any("cut" in n for n in notes)


def test_a_hostile_link_never_becomes_markup():
    _, _, notes = views.parse_link("tab=denoise&<img src=x onerror=alert(1)>=1&model=<script>alert(1)</script>")
    md = views.notes_markdown(notes)
    assert "<img" not in md and "<script" not in md
    assert views.notes_markdown([]) == ""


def test_the_forward_link_says_the_photo_is_not_in_it():
    tab, settings, notes = views.parse_link("tab=forward&t=300&schedules=linear,cosine&noise_seed=3")
    assert (tab, settings) == ("forward", {"t": 300, "schedules": ["linear", "cosine"], "noise_seed": 3})
    assert notes == [views.PHOTO_NOTE]


def test_copy_link_writes_only_the_shown_tabs_settings():
    flat = []
    for k in range(LIMITS.columns):
        flat += [k < 2, ["ddim", "euler"][k % 2], "cosine", 10 * (k + 1), 1.0]
    experiments = [
        "", 0, "emoji-exact", "ddim", "cosine", 50, [200, 999], "",  # round trip (views.EXPERIMENT_KEYS order)
        "cat", "rocket", 1, "new noise (DDPM, Euler a)", "emoji-exact", "ddpm", "linear", 30,  # when decided
        "animal", 4, 6, "emoji-exact-32", "euler_a", "cosine", 20]  # seed grid
    args = ["denoise", "cat & dog", "emoji-exact", "ddim", "cosine", 20, 7, 3.5, 300, ["linear"], 0,
            "fruit", 2, "emoji-exact", "cat face", 0, 50, 3.0, "when", *experiments, *flat]
    query = current_link(*args)
    assert parse_qs(query) == {"tab": ["denoise"], "prompt": ["cat & dog"], "model": ["emoji-exact"],
                               "sampler": ["ddim"], "schedule": ["cosine"], "steps": ["20"], "seed": ["7"],
                               "guidance": ["3.5"]}
    args[0] = "compare"
    tab, settings, notes = views.parse_link(current_link(*args))
    assert (tab, notes) == ("compare", [])
    assert views.compare_columns(settings) == [
        {"sampler": "ddim", "schedule": "cosine", "steps": 10, "guidance": 1.0},
        {"sampler": "euler", "schedule": "cosine", "steps": 20, "guidance": 1.0}]
    args[0] = "forward"
    assert parse_qs(current_link(*args)) == {"tab": ["forward"], "t": ["300"], "schedules": ["linear"],
                                             "noise_seed": ["0"]}
    args[0] = "experiments"  # the experiment on screen (when decided) and only its settings
    tab, settings, notes = views.parse_link(current_link(*args))
    assert (tab, notes) == ("experiments", [])
    assert settings == {"exp": "when", "prompt": "cat", "prompt_b": "rocket", "seed": 1, "mode": "reseed",
                        "model": "emoji-exact", "sampler": "ddpm", "schedule": "linear", "steps": 30}
    args[18] = "seeds"
    assert views.parse_link(current_link(*args))[1] == {
        "exp": "seeds", "prompt": "animal", "seed": 4, "count": 6, "model": "emoji-exact-32", "sampler": "euler_a",
        "schedule": "cosine", "steps": 20}
    args[18] = "round-trip"
    tab, settings, notes = views.parse_link(current_link(*args))
    assert settings["levels"] == [200, 999] and "emoji" not in settings and settings["prompt"] == ""
    assert notes == [views.PHOTO_NOTE]  # an uploaded photo is never in a link


def test_experiment_links_are_read_leniently():
    tab, settings, notes = views.parse_link("tab=experiments&exp=nope&levels=200,250,5000&count=12&mode=x"
                                            "&emoji=rocket&prompt_b=dog")
    assert tab == "experiments"
    assert settings == {"levels": [200, 999], "count": 8, "emoji": "rocket", "prompt_b": "dog"}
    text = " ".join(notes)
    assert "Unknown experiment 'nope'" in text and "t 5000 is outside 0..999: set to 999" in text
    assert "Noise levels other than" in text and "Number of seeds 12 is outside 1..8: set to 8" in text
    assert "Unknown experiment mode 'x'" in text
    assert views.PHOTO_NOTE not in notes  # it starts from an emoji: no photo to leave out
    assert "'levels' does not belong to the denoise tab" in " ".join(views.parse_link("tab=denoise&levels=200")[2])


def test_opening_an_experiment_link_selects_it_sets_its_controls_and_runs_it():
    out = open_from_url("?tab=experiments&exp=seeds&prompt=animal&count=3&seed=5&step=2")
    assert out[-1] == "experiments"
    assert out[-2] == "run:2:seeds"  # the page clicks the seed grid's Run and puts its slider at step 2
    values = [u.get("value") if isinstance(u, dict) else None for u in out]
    selected = [u.get("selected") for u in out if isinstance(u, dict) and "selected" in u]
    assert selected == ["experiments", "seeds"]
    assert "animal" in values and 3 in values and 5 in values


def test_opening_a_link_selects_its_tab_sets_its_controls_and_runs_fast_models():
    out = open_from_url("?tab=denoise&prompt=fruit&steps=5000&step=3")
    assert out[-1] == "denoise"
    run_box, tab_box, note = out[-2], out[-3], out[-4]
    assert (tab_box, run_box) == ("denoise", "run:3")
    assert "set to %d" % LIMITS.steps in note
    # an ordinary visit changes nothing and runs nothing
    plain = open_from_url("")
    assert plain[-3:-1] == ("", "") and len(plain) == len(out)
    # a Stable Diffusion link waits for Generate (it takes minutes on a CPU)
    assert views.view_updates("denoise", {"model": "sd15"})[-1] == ":"


def test_lesson_links_open_the_stop_they_name():
    all_stops = stops()
    out = open_from_url("?lesson=1&stop=3")
    assert out[3] == 2 and f"stop 3 of {len(all_stops)}" in out[1]
    assert out[-1] == all_stops[2].tab
    assert open_from_url("?lesson=1&stop=999")[3] == len(all_stops) - 1
    assert open_from_url("?lesson=1&stop=x")[3] == 0


def test_a_broken_lesson_file_names_its_line_and_the_page_keeps_working(tmp_path, monkeypatch, capsys):
    from diffusion_viz.ui import app

    broken = tmp_path / "my-lesson.toml"
    broken.write_text('title = "Mine"\n\n[[stop]]\ntab = "denoise"\ntitle = "x"\nsay = "y"\nask = "z?"\n'
                      '[stop.settings]\nsteps = 5000\n', encoding="utf-8")
    monkeypatch.setenv("DIFFUSION_VIZ_LESSON", str(broken))
    out = app.lesson_step(0, 0)
    assert len(out) == len(open_from_url("?lesson=1"))
    shown = html.unescape(out[1])  # the page shows the markdown's text (every character escaped)
    assert "mistake" in shown and "my-lesson.toml, line 9" in shown and "got 5000" in shown, shown
    assert out[-3:-1] == ("", "")  # nothing is opened or run
    app._check_lesson()
    assert "my-lesson.toml" in capsys.readouterr().err
    # a teacher's own good lesson replaces the shipped one
    good = tmp_path / "good.toml"
    good.write_text('title = "Mine"\n\n[[stop]]\ntab = "how"\ntitle = "Words first"\nsay = "A sentence."\n'
                    'ask = "A question?"\n', encoding="utf-8")
    monkeypatch.setenv("DIFFUSION_VIZ_LESSON", str(good))
    out = app.lesson_step(0, 0)
    shown = html.unescape(out[1])
    assert "Words first" in shown and "stop 1 of 1" in shown and out[-1] == "how"
