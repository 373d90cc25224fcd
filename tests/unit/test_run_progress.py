from types import SimpleNamespace

import pytest

from erasebench.results import UnitTimings
from erasebench.run_progress import RunProgress, format_duration


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def records(recorded, timings=None):
    """``ResultStore.record`` over the run ids in ``recorded``, with their timings."""
    timings = timings or {}
    return lambda run_id: (SimpleNamespace(provenance=SimpleNamespace(
        timings=timings.get(run_id))) if run_id in recorded else None)


def timings(images, scoring, trained=None, erasure=0.5, drawn=0, awaited=0.0):
    """A unit's timings: ``images`` seconds drawing ``drawn`` images (reading the rest),
    ``awaited`` of them waiting for other processes' images, ``trained`` seconds making
    its erasure, else ``erasure`` reading it."""
    return UnitTimings(erasure=erasure if trained is None else trained,
                       erasure_trained=trained is not None, training=trained or 3.0,
                       training_device="cuda:0", images=images, scoring=scoring,
                       images_drawn=drawn, scoring_drawn=0, images_awaited=awaited)


def test_without_timings_the_time_left_is_the_images_left_at_the_rate_so_far():
    clock = Clock()
    progress = RunProgress({"small": 1_000, "large": 5_000, "medium": 3_000}, clock=clock)
    assert progress.line() == "0/3 units, 0/9,000 images"  # no rate yet, no guess
    clock.now += 600
    recorded = {"small"}
    progress.update(records(recorded))
    # 1,000 images in 10 min: the 8,000 left take 80 min
    assert progress.line() == "1/3 units, 1,000/9,000 images, about 1 h 20 min left"
    clock.now += 1_800
    recorded |= {"medium", "someone else's unit"}  # another run's units do not count
    progress.update(records(recorded))
    # 4,000 in 40 min: 5,000 left, 50 min
    assert progress.line() == "2/3 units, 4,000/9,000 images, about 50 min left"
    recorded.add("large")
    progress.update(records(recorded))
    assert progress.line() == "3/3 units, 9,000/9,000 images"


def test_the_time_left_is_the_images_left_at_their_tasks_seconds_and_the_erasures_to_make():
    esd, esd_other, age, uce = ("esd", "cat"), ("esd", "dog"), ("age", "cat"), ("uce", "cat")
    images = {"esd cat 1": 1_000, "esd cat 2": 1_000, "esd dog": 500, "age cat": 2_000,
              "sd": 1_000, "uce cat": 2_000}
    tasks = {"esd cat 1": "A", "esd cat 2": "B", "esd dog": "A", "age cat": "A", "sd": "B",
             "uce cat": "B"}
    erasures = {"esd cat 1": esd, "esd cat 2": esd, "esd dog": esd_other, "age cat": age,
                "sd": None, "uce cat": uce}
    # Two processes; UCE's erasure was made by a unit recorded before the run.
    progress = RunProgress(images, tasks, erasures, made={uce}, processes=2)
    recorded, timed = {"esd cat 1"}, {"esd cat 1": timings(300, 100, trained=400, drawn=1_000)}
    progress.update(records(recorded, timed))
    # Task A's 1,000 images in 300 + 100 s: 0.4 s each, as are task B's not timed yet: the
    # units left take 400 ("esd cat 2"), 200, 800, 400 and 800 s. Erasures to make: ESD's
    # of "dog" at ESD's 400 s, AGE's at the 400 s seen so far for any eraser (not ESD's
    # "cat" again, nor UCE's). On two processes in order: "esd cat 2" 0-400 s; "esd dog"
    # makes its erasure and ends at 600; "age cat" from 400, erasure and images, to 1,600;
    # "sd" 600-1,000; "uce cat" 1,000-1,800 s. AGE's erasure, priced so, is named.
    assert progress.line() == ("1/6 units, 1,000/7,500 images, about 30 min left (erasures "
                               "of age priced at other erasers' pace)")
    recorded |= {"age cat", "sd", "esd cat 2"}  # sd's record has no timings (written before)
    timed |= {"age cat": timings(500, 300, trained=1_000, drawn=2_000),
              "esd cat 2": timings(90, 10, drawn=1_000)}
    progress.update(records(recorded, timed))
    # Task A: 3,000 images drawn in 800 s and scored in 400, 0.4 s each; task B: 1,000
    # drawn in 90 s, scored in 10 and its erasure read in 0.5. Left: "esd dog" (A), after
    # ESD's "dog" erasure at ESD's 400 s (not the 700 s of all erasers), 133.3 s drawing its
    # 500 images and 66.7 scoring them; "uce cat" (B) on the other process, 180 s drawing
    # its 2,000 images and 21 scoring them (at one rate for all tasks, 0.325 s an image,
    # 650 s). That process, free at 201 s, helps draw "esd dog" once its erasure is made
    # (Runner.help): 400 + 133.3 / 2 + 66.7 = 533 s, 9 min (600 s drawn alone).
    assert progress.line() == "4/6 units, 5,000/7,500 images, about 9 min left"
    progress.helping = False
    assert progress.line() == "4/6 units, 5,000/7,500 images, about 10 min left"
    progress.update(records(set(images)))
    assert progress.line() == "6/6 units, 7,500/7,500 images"


def test_a_unit_left_undone_out_of_memory_is_no_longer_counted_among_those_to_do():
    # It was: once every other unit was done, the line still said "about 0 s left" for the
    # unit the run had given up on, and priced its images and erasure before that.
    images = {"done": 1_000, "too big": 5_000, "next": 1_000}
    erasures = {"done": ("esd", "a"), "too big": ("age", "b"), "next": None}
    progress = RunProgress(images, dict.fromkeys(images, "A"), erasures)
    recorded, timed = {"done"}, {"done": timings(300, 100, trained=400, drawn=1_000)}
    progress.update(records(recorded, timed))
    # 0.4 s an image: 400 s for "next", 2,000 for "too big" and 400 for its erasure
    assert progress.line() == ("1/3 units, 1,000/7,000 images, about 47 min left (erasures "
                               "of age priced at other erasers' pace)")
    progress.leave_undone("too big")
    assert progress.line() == "1/3 units, 1,000/7,000 images, 1 left undone, about 7 min left"
    assert progress.images_to_draw == 1_000 and progress.take_longest_first() == ["next"]
    progress.update(records({"done", "next"}, timed))
    assert progress.line() == "2/3 units, 2,000/7,000 images, 1 left undone"


def test_on_many_processes_the_time_left_is_held_by_the_largest_unit_and_erasures_made():
    # A finished unit gives the pace: 0.8 s drawing and 0.2 s scoring per image, erasures
    # 100 s. Left, in order: a large unit with its erasure to make, and three small ones.
    images = {"done": 10, "large": 500, "small 1": 50, "small 2": 50, "small 3": 50}
    erasures = {"done": ("esd", "a"), "large": ("esd", "b")}
    timed = {"done": timings(8, 2, trained=100, drawn=10)}
    progress = RunProgress(images, {}, erasures, processes=4, helping=False)
    progress.update(records({"done"}, timed))
    # On one process all of it: 650 images and the one erasure, 750 s. On four the large
    # unit holds it, its erasure and images: 600 s, not the 188 s a share of the total
    # would say; so on more processes than units.
    assert progress.seconds_left_by_timings() == 600
    progress.processes = 1
    assert progress.seconds_left_by_timings() == 750
    progress.processes = 100
    assert progress.seconds_left_by_timings() == 600
    # With the processes that end their units helping (Runner.help): on four the small
    # units end at 50 s and their three processes wait with the large one's for its
    # erasure; from 100 s four draw its 400 s of images, to 200 s, and it scores them
    # alone for 100 s: 300 s. On 100 the smalls end sooner, and from 100 s all 100 draw:
    # 104 s, and 100 s scoring. On one nobody is left to help.
    progress.helping = True
    assert progress.seconds_left_by_timings() == pytest.approx(204)
    progress.processes = 4
    assert progress.seconds_left_by_timings() == 300
    progress.processes = 1
    assert progress.seconds_left_by_timings() == 750
    # A unit whose erasure another process is making waits for it: "maker" makes it in
    # 100 s and draws 10 images; "shares", on the other process, waits until 100 s, then
    # draws its 300 images, to 400 s. Helping: "maker" ends at 110 s, and its process
    # helps draw the 230 s of drawing "shares" has left, to 225 s, then it scores: 285 s.
    images = {"done": 10, "maker": 10, "shares": 300}
    erasures = {"done": ("esd", "a"), "maker": ("esd", "b"), "shares": ("esd", "b")}
    progress = RunProgress(images, {}, erasures, processes=2, helping=False)
    progress.update(records({"done"}, timed))
    assert progress.seconds_left_by_timings() == 400
    progress.helping = True
    assert progress.seconds_left_by_timings() == pytest.approx(285)


def test_images_to_draw_read_and_score_are_priced_apart():
    images = {"drew": 100, "read": 100, "to do": 200, "other task": 10}
    tasks = {"drew": "A", "read": "A", "to do": "A", "other task": "B"}
    # "to do" draws 50 of its 200 images and reads the rest from the image cache.
    progress = RunProgress(images, tasks, draws_of={"to do": 50, "other task": 10})
    progress.update(records({"read"}, {"read": timings(2, 10, erasure=0, drawn=0)}))
    # Only reads and scoring timed: no pace for the 60 images to draw.
    assert progress.seconds_left_by_timings() is None
    assert progress.images_to_draw == 160  # "drew" draws all its 100: it is not named
    # "drew" spent 30 of its 80 s waiting for images other processes drew (helpers, or a
    # unit asking for the same ones): not its pace, which the schedule's helping prices.
    progress.update(records({"read", "drew"}, {
        "read": timings(2, 10, erasure=0, drawn=0),
        "drew": timings(80, 10, erasure=0, drawn=100, awaited=30)}))
    # Task A draws at 0.5 s an image, reads at 0.02 and scores at 0.1: "to do" takes
    # 50 x 0.5 + 150 x 0.02 + 200 x 0.1 = 48 s; task B, not seen, at A's rates: 10 x 0.6.
    assert progress.images_left_seconds() == pytest.approx(48 + 6)
    assert progress.images_to_draw == 60
    # A record written before the images its scoring drew were counted apart: its drawn
    # count, which holds them, is taken at most as its own images.
    old = timings(50, 10, erasure=0, drawn=400).model_copy(update={"scoring_drawn": None})
    progress = RunProgress({"drew": 100, "to do": 100})
    progress.update(records({"drew"}, {"drew": old}))
    assert progress.images_left_seconds() == pytest.approx(100 * 0.5 + 100 * 0.1)


def test_reference_images_the_scoring_drew_once_are_not_priced_into_every_unit():
    images = {"first": 1_000, "second": 1_000, "third": 1_000}
    progress = RunProgress(images, dict.fromkeys(images, "artist"))
    # The first unit drew its 1,000 images at 0.25 s each, then its scoring drew the
    # original model's 1,000 reference images (250 s) and scored for 10 s.
    first = timings(250, 260, erasure=0, drawn=1_000).model_copy(
        update={"scoring_drawn": 1_000})
    progress.update(records({"first"}, {"first": first}))
    # The others read the references from the image cache: 250 + 10 s each, not 250 + 260
    assert progress.images_left_seconds() == pytest.approx(2 * 260)
    # A unit that drew none of its own images prices what its scoring drew at the
    # task's drawing pace so far
    progress = RunProgress({**images, "other task": 100},
                           {**dict.fromkeys(images, "artist"), "other task": "graph"})
    read_all = timings(20, 260, erasure=0).model_copy(update={"scoring_drawn": 1_000})
    progress.update(records({"first", "second"}, {"first": first, "second": read_all}))
    # artist: draws at 0.25 s, reads at 0.02, scores at 0.01: "third" 250 + 10
    assert progress.images_left_seconds() == pytest.approx(260 + 100 * 0.26)


def test_attacks_read_from_the_attack_cache_do_not_price_the_units_that_make_theirs():
    # A robustness unit stopped half-way through its attacks and resumed read them from
    # the attack cache: taken for the task's pace, it priced the units still to do, which
    # make all theirs, at a fraction of their time.
    images = {"made": 10, "read": 10, "to do": 10}
    progress = RunProgress(images, dict.fromkeys(images, "robustness"),
                           draws_of={"to do": 0})
    made = timings(5, 110, erasure=0, drawn=10).model_copy(update={"attacking": 100.0})
    read = timings(5, 10.5, erasure=0, drawn=10).model_copy(
        update={"attacking": 0.5, "attacks_read": 15})
    progress.update(records({"made", "read"}, {"made": made, "read": read}))
    # Scoring besides the attacks: (10 + 10) s over 20 images; the attacks: 100 s over the
    # 10 images of the unit that made all its own.
    assert progress.images_left_seconds() == pytest.approx(10 * 1.0 + 10 * 10.0)
    # A record written before the attacks were kept apart (schema 6) has them in scoring.
    progress = RunProgress({"old": 10, "to do": 10}, {"old": "robustness",
                                                      "to do": "robustness"},
                           draws_of={"to do": 0})
    progress.update(records({"old"}, {"old": timings(5, 110, erasure=0, drawn=10)}))
    assert progress.images_left_seconds() == pytest.approx(10 * 11.0)


def test_the_attacked_images_every_unit_draws_stay_in_the_scoring_pace():
    # The images the scoring drew were all taken for the original model's references,
    # which only the first unit to score against them draws: a robustness unit's attacked
    # images, which every unit draws (on SD 1,500 a unit), went unpriced.
    images = {"first": 10, "to do": 10}
    progress = RunProgress(images, dict.fromkeys(images, "robustness"),
                           draws_of={"to do": 0})
    # 10 references and 20 attacked images drawn in scoring, at 0.5 s an image as its own
    first = timings(5, 30, erasure=0, drawn=10).model_copy(
        update={"attacking": 10.0, "scoring_drawn": 30, "attacked_drawn": 20})
    progress.update(records({"first"}, {"first": first}))
    # scoring besides the attacks, less the 10 references: 30 - 10 - 5 = 15 s; attacks 10 s
    assert progress.images_left_seconds() == pytest.approx(15 + 10)
    # A record before attacked images were counted apart (schema 8) took them all off.
    before = first.model_copy(update={"attacked_drawn": None})
    progress = RunProgress(images, dict.fromkeys(images, "robustness"),
                           draws_of={"to do": 0})
    progress.update(records({"first"}, {"first": before}))
    assert progress.images_left_seconds() == pytest.approx(5 + 10)


def test_attacks_the_attack_cache_holds_for_a_unit_to_do_are_taken_off_its_price():
    # A robustness run stopped in the middle of a unit's attacks, or scored again, was
    # priced as if it made them all again: on SD hours for a rerun of minutes.
    from erasebench.attack_cache import HeldAttacks
    from erasebench.cached_work import CachedWork

    images = {"made": 10, "half": 10, "all": 10, "none": 10}
    progress = RunProgress(images, dict.fromkeys(images, "robustness"),
                           draws_of=dict.fromkeys(images, 0))
    progress.count_cached(CachedWork(attacks_held={"half": HeldAttacks(7, 40.0),
                                                   "all": HeldAttacks(15, 130.0)}))
    made = timings(5, 110, erasure=0, drawn=10).model_copy(update={"attacking": 100.0})
    progress.update(records({"made"}, {"made": made}))
    # Each unit: 10 s of other scoring and 100 s of attacks, less the seconds its held
    # attacks took to make; "all" holds more than the pace prices: none left to make.
    assert progress._unit_seconds() == pytest.approx({"half": 10 + 60, "all": 10,
                                                      "none": 10 + 100})


def test_reference_images_a_unit_to_do_draws_are_priced_at_the_drawing_pace():
    images = {"first": 1_000, "second": 1_000}
    # "second"'s scoring draws the original model's 1,000 images it compares with: no unit
    # before it did (no sd among the erasers).
    progress = RunProgress(images, dict.fromkeys(images, "artist"),
                           references_of={"second": 1_000})
    assert progress.images_to_draw == 3_000
    first = timings(250, 10, erasure=0, drawn=1_000)
    progress.update(records({"first"}, {"first": first}))
    assert progress.images_to_draw == 2_000
    # 1,000 of its own and 1,000 references at 0.25 s, then 10 s of scoring
    assert progress.images_left_seconds() == pytest.approx(500 + 10)
    # On two processes the idle one helps draw both.
    progress.processes = 2
    assert progress.seconds_left_by_timings() == pytest.approx(250 + 10)


def test_durations_read_at_a_glance():
    assert format_duration(42.4) == "42 s"
    assert format_duration(7 * 60 + 20) == "7 min"
    assert format_duration(3 * 3600 + 5 * 60) == "3 h 05 min"
    assert format_duration(59 * 60 + 50) == "1 h 00 min"


def resumed(mock_drawing, mock_device):
    """A run resumed with two units recorded, sd's and a mock erasure's, of 8 images each,
    sd's drawn in 4 s on "cuda (A)" and mock's in ``mock_drawing`` s on ``mock_device``
    (both scored in 2 s; mock's erasure made in 30 s); to do, the same with 12 images,
    sd's drawing the 4 the recorded one did not, and another mock erasure to make and
    its 12 images to draw. Returns the units done and to do, and their records."""
    from erasebench.registry import ERASERS, TASKS
    from erasebench.runner import plan
    from erasebench.specs import ModelSpec

    def units(strength, images_per_concept):
        erasers = [ERASERS.get("sd")(), ERASERS.get("mock")({"strength": strength})]
        task = TASKS.get("mock")({"images_per_concept": images_per_concept})
        return plan(erasers, [task], ModelSpec(id="tiny"), {"steps": 3})

    done, todo = units(1.0, 4), units(0.5, 6)
    before = {done[0].run_id: timings(4.0, 2.0, erasure=0.0, drawn=8),
              done[1].run_id: timings(mock_drawing, 2.0, trained=30.0, drawn=8)}
    device = {done[0].run_id: "cuda (A)", done[1].run_id: mock_device}

    def record_of(run_id):
        record = records(set(before), before)(run_id)
        if record is not None:
            record.image_count, record.provenance.device = 8, device[run_id]
        return record

    return done, todo, record_of


def test_a_resumed_run_prices_what_is_left_at_the_pace_of_the_units_recorded_before():
    done, todo, record_of = resumed(4.0, "cuda (A)")
    progress = RunProgress.of_units(todo, done, processes=1)
    assert progress.start_line() == ""  # no pace yet: the first finished unit gives one
    assert progress.learn_pace(done, record_of, device="cuda (A)") == 2
    # Drawing at 0.5 s per image and scoring at 0.25 s per image asked for: 16 images to
    # draw and 24 to score, 14 s; the mock erasure at the 30 s the recorded one took.
    assert progress.images_left_seconds() == pytest.approx(16 * 0.5 + 24 * 0.25)
    assert progress.training_left() == 30.0
    assert progress.start_line() == "about 44 s left at the pace of the 2 units recorded before"
    assert progress.untimed_note() == ""  # mock's erasures are timed by the recorded one


def test_a_resumed_run_takes_the_pace_of_the_units_recorded_on_its_own_kind_of_device():
    # As above, but the mock unit was recorded on a slower GPU, B: 8 images in 12 s.
    done, todo, record_of = resumed(12.0, "cuda (B)")
    # On A: sd's unit alone, 0.5 s per image drawn, 0.25 scoring: 16 x 0.5 + 24 x 0.25.
    on_a = RunProgress.of_units(todo, done, processes=1)
    assert on_a.learn_pace(done, record_of, device="cuda (A)") == 1
    assert on_a.paced_elsewhere == 1
    assert on_a.images_left_seconds() == pytest.approx(14.0)
    assert on_a.start_line().startswith(
        "about 14 s left at the pace of the 1 unit recorded before on cuda (A) (1 "
        "recorded on other devices left out) (erasures of mock")
    # On a device none was recorded on, or not told (a Ray driver): both, 16 images in
    # 16 s, 1 s per image drawn: 16 + 6.
    for elsewhere in ("cuda (C)", None):
        both = RunProgress.of_units(todo, done, processes=1)
        assert both.learn_pace(done, record_of, device=elsewhere) == 2
        assert both.paced_elsewhere == 0
        assert both.images_left_seconds() == pytest.approx(22.0)
        assert both.start_line() == "about 52 s left at the pace of the 2 units recorded before"
    # A dry run (of_records, from the plan's units and their records) sets out alike.
    planned = RunProgress.of_records([*done, *todo], record_of, processes=1, device="cuda (A)")
    assert (planned.paced_by_earlier, planned.paced_elsewhere) == (1, 1)
    assert planned.images_left_seconds() == pytest.approx(14.0)
    assert planned.seconds_left_by_timings() == on_a.seconds_left_by_timings()


def test_a_ray_run_takes_the_pace_of_its_actors_device_once_the_first_actor_names_it():
    # The mock unit recorded before on B; the driver, not told its actors' device, takes both.
    done, todo, record_of = resumed(12.0, "cuda (B)")
    driver = RunProgress.of_units(todo, done, processes=1)
    assert driver.learn_pace(done, record_of) == 2
    assert driver.images_left_seconds() == pytest.approx(22.0)
    # sd's unit of the run ends on A (4 images drawn in 2 s, 12 scored in 3 s) before the
    # first actor names A: the pace is then sd's two units', as it is where A was known.
    sd = todo[0].run_id
    ended = timings(2.0, 3.0, erasure=0.0, drawn=4)

    def and_the_run(run_id):
        if run_id != sd:
            return record_of(run_id)
        return SimpleNamespace(image_count=12, provenance=SimpleNamespace(
            timings=ended, device="cuda (A)"))

    driver.update(and_the_run)
    known = RunProgress.of_units(todo, done, processes=1)
    known.learn_pace(done, record_of, device="cuda (A)")
    known.update(and_the_run)
    driver.learn_pace_on("cuda (A)")
    # 12 images drawn in 6 s, 20 scored in 5 s: mock's 12 to draw and score, 6 + 3.
    assert driver.images_left_seconds() == pytest.approx(9.0)
    assert driver.seconds_left_by_timings() == known.seconds_left_by_timings()
    assert (driver.paced_by_earlier, driver.paced_elsewhere) == (1, 1)
    assert driver.start_line().startswith(
        "about 9 s left at the pace of the 1 unit recorded before on cuda (A) (1 recorded on "
        "other devices left out)")
    driver.learn_pace_on("cuda (A)")  # told again: nothing changes
    assert driver.images_left_seconds() == pytest.approx(9.0)
    # Actors on a device none was recorded on take all the records, as before.
    elsewhere = RunProgress.of_units(todo, done, processes=1)
    elsewhere.learn_pace(done, record_of)
    elsewhere.learn_pace_on("cuda (C)")
    assert elsewhere.images_left_seconds() == pytest.approx(22.0)
    assert (elsewhere.paced_by_earlier, elsewhere.paced_elsewhere) == (2, 0)


def test_units_are_taken_longest_first_by_their_images_and_the_erasures_they_make():
    images = {"done": 10, "small": 50, "shares": 200, "large": 300, "maker": 100,
              "drawn by others": 400}
    erasures = {"done": ("age", "a"), "maker": ("age", "b"), "shares": ("age", "b")}
    # Before any pace: the images each draws ("drawn by others" reads all of its 400).
    progress = RunProgress(images, {}, erasures, processes=2,
                           draws_of={"drawn by others": 0})
    assert progress.take_longest_first() == ["large", "shares", "maker", "small", "done",
                                             "drawn by others"]
    # With a pace (1 s an image drawn and scored, 0.2 s of it scoring, reading free; AGE's
    # erasures 250 s): "shares", the longer of the two units needing AGE's "b", makes it,
    # 450 s; "maker" reads it, 100 s; "drawn by others" scores its 400 images, 80 s.
    progress.update(records({"done"}, {"done": timings(8, 2, trained=250, drawn=10)}))
    assert progress.take_longest_first() == ["shares", "large", "maker", "drawn by others",
                                             "small"]
    # The time left follows that order on the two processes: "shares" 0-450 s, "large"
    # 0-300, "maker" 300-400 (its erasure made at 250), "drawn by others" 400-480,
    # "small" 450-500; from 480 s the process that ran "drawn by others" helps draw the
    # 10 s left of "small": 495 s.
    assert progress.seconds_left_by_timings() == 495
    progress.helping = False
    assert progress.seconds_left_by_timings() == 500
    assert list(progress.images_of)[-1] == "done"  # the finished kept, last
