import math

import pytest

from erasebench.provenance import NO_CHANGE, format_seconds, provenance_table, records_provenance
from erasebench.results import UnitTimings


def made_in(seconds):
    """Timings of a unit that read an erasure made in ``seconds`` on a GPU."""
    return UnitTimings(erasure=0.0, erasure_trained=False, training=seconds,
                       training_device="cuda:0", images=1.0, scoring=1.0, images_drawn=0)


def test_erasure_time_is_the_median_over_distinct_erasures_and_absent_where_not_kept(
        make_record):
    records = [
        make_record("mock", "cat", edit="e1", timings=made_in(10.0)),
        make_record("mock", "dog", edit="e2", timings=made_in(30.0)),
        # the same erasure, another unit
        make_record("mock", "cat", edit="e1", timings=made_in(10.0), steps=3),
        make_record("sd", edit=NO_CHANGE, timings=made_in(0.001)),  # no erasure to time
        make_record("uce", edit="e3"),  # a record written before timings were kept
    ]
    table = records_provenance(records).set_index("eraser")
    assert table.loc["mock", "erasure_seconds"] == 20.0  # of 10 and 30, not 10, 10 and 30
    assert table.loc["mock", "erasure_device"] == "cuda:0"
    assert table.loc["mock", "images"] == 12
    assert math.isnan(table.loc["sd", "erasure_seconds"])
    assert math.isnan(table.loc["uce", "erasure_seconds"])
    text = provenance_table(table.reset_index())
    assert "| 2 | 12 | 20 s on cuda:0 |" in text.splitlines()[2]  # requests, images
    assert all(" | 4 | – | " in line for line in text.splitlines()[3:5])


def test_the_code_column_names_each_commit_and_the_uncommitted_changes_beside_it(
        make_record):
    codes = [("1a" * 20, ""), ("1a" * 20, "9f8e7d6c" * 2), ("2b" * 20, "")]
    records = [make_record("mock", concept) for concept in ("cat", "dog", "cow")]
    for record, (sha, changes) in zip(records, codes, strict=True):
        record.provenance.git_sha, record.provenance.code_changes = sha, changes
    [row] = records_provenance(records).itertuples()
    assert row.git_sha == "1a1a1a1a1a, 1a1a1a1a1a with changes 9f8e7d6c, 2b2b2b2b2b"
    assert "| 1a1a1a1a1a, 1a1a1a1a1a with changes 9f8e7d6c, 2b2b2b2b2b |" in \
        provenance_table(records_provenance(records))


@pytest.mark.parametrize(("seconds", "text"), [
    (0.153, "0.15 s"), (3.24, "3.2 s"), (42.4, "42 s"), (444, "7.4 min"),
    (2526, "42 min"), (7560, "2.1 h"), (40_000, "11 h")])
def test_erasure_times_read_with_two_or_three_digits(seconds, text):
    assert format_seconds(seconds) == text
