import pytest
from rich.console import Console

from erasebench.help_records import HelpRecord
from erasebench.results import UnitTimings
from erasebench.timings import summarise, timings_frame, timings_table


def timed(erasure, made, drawn, images, scoring, scoring_drawn=0, awaited=None, batch=None,
          attacking=None):
    return UnitTimings(erasure=erasure, erasure_trained=made, training=100.0,
                       training_device="cpu", images=images, scoring=scoring,
                       images_drawn=drawn, scoring_drawn=scoring_drawn,
                       images_awaited=awaited, batch=batch, attacking=attacking)


def test_where_the_time_went_per_eraser_and_task(make_record):
    records = [
        # esd: makes its erasure (100 s) and draws its 40 images in 20 s (batches of 8, out
        # of memory at more), scores in 1 s;
        make_record("esd", "cat", timings=timed(100.0, True, 40, 20.0, 1.0, batch=8),
                    images=40),
        # then reads the erasure and its images (all cached: 3 s drawing nothing), 2 s scoring
        make_record("esd", "cat", timings=timed(0.5, False, 0, 3.0, 2.0), images=40, steps=3),
        # sd: its scoring drew 3 reference images besides its own 60
        make_record("sd", timings=timed(0.01, True, 60, 20.0, 2.0, 3, batch=32), images=20),
        make_record("uce"),  # no timings: left out
    ]
    frame = timings_frame(records)
    assert sorted(frame["eraser"]) == ["esd", "esd", "sd"]
    summary = summarise(frame).set_index("eraser")
    esd = summary.loc["esd"]
    assert (esd.units, esd.erasures, esd.erasure) == (2, 1, 100.0)
    assert (esd.images_drawn, esd.drawing, esd.images_per_second) == (40, 20.0, 2.0)
    # 80 images scored in 3 s; drawing them takes 40 s at 2 images/s: 7.5%
    assert esd.scoring_share == pytest.approx(0.075)
    assert esd.total == pytest.approx(100 + 20 + 1 + 0.5 + 3 + 2)
    # sd: 3 images/s, 20 scored images take 6.67 s to draw; of its 2 s of scoring, 1 s
    # drew its 3 reference images at that pace: 1 s of 6.67, 15%
    assert summary.loc["sd", "scoring_drawn"] == 3
    assert summary.loc["sd", "scoring_share"] == pytest.approx(0.15)
    console = Console(width=160, record=True)
    console.print(timings_table(frame))
    text = console.export_text()
    assert "(model tiny, device cpu)" in text  # common to every row: in the title
    row = next(line for line in text.splitlines() if line.strip().startswith("esd"))
    assert row.split() == ["esd", "mock", "2", "1", "1.7", "min", "40", "20", "s", "2", "8",
                           "0", "7.5%", "2.1", "min"]  # the unit that drew none has no batch
    # over both: 100 images in 40 s, 2.5/s; 100 scored take 40 s to draw, scored in 5 s of
    # which 1.2 s drew the 3 reference images: 3.8 s, 9.5%
    total = next(line for line in text.splitlines() if line.strip().startswith("all"))
    assert total.split() == ["all", "3", "2", "1.7", "min", "100", "40", "s", "2.5", "8-32",
                             "3", "9.5%", "2.5", "min"]
    assert "written before" not in text
    lines = text.splitlines()  # the caption, a paragraph, left-aligned as the table
    caption = lines[next(i for i, line in enumerate(lines) if "erasing: making" in line):]
    assert len(caption) > 1 and all(line[0] != " " for line in caption if line.strip())
    # A record written before the images drawn in scoring were counted apart, whose 20
    # drawn hold its scoring's: taken as its own 8 at most, and said below the table.
    records.append(make_record("uce", timings=timed(0.1, True, 20, 4.0, 1.0, None), images=8))
    assert summarise(timings_frame(records)).set_index("eraser").loc["uce", "images_drawn"] == 8
    console = Console(width=160, record=True)
    console.print(timings_table(timings_frame(records)))
    assert "1 of the 4 records were written before" in " ".join(console.export_text().split())


def test_an_attack_on_the_model_is_shown_apart_and_left_out_of_the_scoring_share(
        make_record):
    # A robustness unit: 20 images drawn in 10 s (2/s); its scoring took 130 s, of which
    # 120 s attacked the model and 5 s drew the 10 attacked images: 5 s of scoring against
    # the 10 s its 20 images took to draw, 50%, not 1250%. An older record (no attacking
    # kept) and a unit that attacks nothing show none.
    records = [make_record("esd", images=20,
                           timings=timed(1.0, True, 20, 10.0, 130.0, 10, attacking=120.0)),
               make_record("uce", timings=timed(1.0, True, 20, 10.0, 2.0, attacking=0.0),
                           images=20),
               make_record("sd", timings=timed(1.0, True, 20, 10.0, 2.0), images=20)]
    summary = summarise(timings_frame(records)).set_index("eraser")
    assert summary.loc["esd", "attacking"] == 120.0
    assert summary.loc["esd", "scoring_share"] == pytest.approx(0.5)
    assert summary.loc["uce", "scoring_share"] == pytest.approx(0.2)
    console = Console(width=200, record=True)
    console.print(timings_table(timings_frame(records)))
    text = console.export_text()
    header = next(line for line in text.splitlines() if "scoring drew" in line)
    assert header.split()[-5:] == ["drew", "attacks", "scoring", "share", "all"]
    rows = {line.split()[0]: line.split() for line in text.splitlines()
            if line.strip().split()[:1] in (["esd"], ["uce"], ["sd"])}
    assert rows["esd"][-6:] == ["10", "2", "min", "50.0%", "2.4", "min"]
    assert rows["uce"][-5:] == ["0", "–", "20.0%", "13", "s"] and rows["sd"][-4] == "–"
    assert "attacks: the scoring's attacks on the edited model" in " ".join(text.split())
    console = Console(width=200, record=True)  # without an attack, no such column
    console.print(timings_table(timings_frame(records[1:])))
    assert "attacks" not in console.export_text()


def test_a_units_pace_leaves_out_its_waiting_for_images_other_processes_drew(make_record):
    # The last unit of a run, helped (Runner.help): its process drew 30 of its 50 images in
    # 10 s and waited 5 s more for the helpers' last batch; the other 20 are in the
    # helpers' records (below).
    records = [make_record("mace", timings=timed(1.0, True, 30, 15.0, 1.0, awaited=5.0),
                           images=50)]
    row = summarise(timings_frame(records)).iloc[0]
    assert (row.images_drawn, row.drawing, row.images_per_second) == (30, 10.0, 3.0)
    # 50 scored images take 16.7 s to draw at 3 images/s: 1 s of scoring is 6% of it
    assert row.scoring_share == pytest.approx(0.06)
    assert row.total == pytest.approx(1 + 15 + 1)  # the waiting is still the unit's time


def test_the_helpers_work_is_added_from_their_help_records(make_record):
    # As above, with the helper's record of the other 20 images, drawn in 10 s: the unit's
    # 50 images took 20 s of drawing, 2.5 images/s; 50 scored images take 20 s to draw at
    # that pace, 1 s of scoring is 5% of it; the total has the helper's 10 s.
    records = [make_record("mace", timings=timed(1.0, True, 30, 15.0, 1.0, awaited=5.0),
                           images=50)]
    helped = [HelpRecord(run_id=records[0].run_id, eraser="mace", task="mock", model="tiny",
                         device="cpu", images_drawn=20, drawing=10.0)]
    frame = timings_frame(records, helped)
    row = summarise(frame).iloc[0]
    assert (row.units, row.erasures, row.erasure) == (1, 1, 1.0)  # a help is no unit
    assert (row.images_drawn, row.drawing, row.images_per_second) == (50, 20.0, 2.5)
    assert row.scoring_share == pytest.approx(0.05)
    assert row.total == pytest.approx(17 + 10)
    # A helper that claimed the unit's erasure first made it (30 s) and drew 4 images in
    # 2 s; the unit's process read it (0.5 s): one erasure, 30 s, counted once.
    records = [make_record("ca", timings=timed(0.5, False, 10, 5.0, 1.0, awaited=0.0),
                           images=14)]
    helped = [HelpRecord(run_id=records[0].run_id, eraser="ca", task="mock", model="tiny",
                         device="cpu", images_drawn=4, drawing=2.0, erasure=30.0,
                         erasure_made=True)]
    row = summarise(timings_frame(records, helped)).iloc[0]
    assert (row.units, row.erasures, row.erasure) == (1, 1, 30.0)
    assert (row.images_drawn, row.drawing, row.images_per_second) == (14, 7.0, 2.0)
    assert row.total == pytest.approx(6.5 + 32)
    console = Console(width=160, record=True)
    console.print(timings_table(timings_frame(records, helped)))
    assert "include the work of 1 help record:" in " ".join(console.export_text().split())


def test_the_reference_images_a_helper_drew_are_the_scorings_drawing(make_record):
    # As the first case above, where the helper also drew the 8 original-model images the
    # unit's scoring compares with, in 4 s: they were counted as the unit's images drawn,
    # 58 in 24 s (2.42 images/s), and "scoring drew" said none. Now the images drawn and
    # their pace are the unit's own, 50 in 20 s (2.5 images/s), and the 8 are the
    # scoring's, as those its own scoring draws: their 4 s are the scoring's, less 3.2 s
    # (the 8 at the row's pace), so the share is 1 + 4 - 3.2 = 1.8 s of the 20 s.
    records = [make_record("mace", timings=timed(1.0, True, 30, 15.0, 1.0, awaited=5.0),
                           images=50)]
    helped = [HelpRecord(run_id=records[0].run_id, eraser="mace", task="mock", model="tiny",
                         device="cpu", images_drawn=20, drawing=10.0, references_drawn=8,
                         referencing=4.0)]
    row = summarise(timings_frame(records, helped)).iloc[0]
    assert (row.images_drawn, row.drawing, row.images_per_second) == (50, 20.0, 2.5)
    assert (row.scoring_drawn, row.scoring) == (8, pytest.approx(5.0))
    assert row.scoring_share == pytest.approx((5.0 - 8 / 2.5) / 20)
    assert row.total == pytest.approx(17 + 10 + 4)


def test_configurations_are_timed_apart_named_as_in_the_leaderboard(make_record):
    # Units drawn at 3 steps beside units at 2 were one row, their images/s a pace of
    # neither: 2 images/s at 2 steps and 4 at 3 (the helper's 40 in 10 s too) read 3.
    from erasebench.variants import find_variants

    records = [make_record("esd", timings=timed(1.0, True, 40, 20.0, 1.0), images=40),
               make_record("esd", timings=timed(1.0, True, 40, 10.0, 1.0), images=80, steps=3)]
    helped = [HelpRecord(run_id=records[1].run_id, eraser="esd", task="mock", model="tiny",
                         device="cpu", images_drawn=40, drawing=10.0)]
    assert summarise(timings_frame(records, helped)).images_per_second.tolist() == \
        [pytest.approx(120 / 40)]
    summary = summarise(timings_frame(records, helped, find_variants(records).labels))
    rates = summary.set_index("eraser").images_per_second.to_dict()
    assert rates == {"esd [generation: steps=2]": 2.0, "esd [generation: steps=3]": 4.0}
    assert summary.units.tolist() == [1, 1]
