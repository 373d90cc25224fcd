import math

import pytest

from erasebench.provenance import NO_CHANGE, format_seconds, provenance_table, records_provenance
from erasebench.results import MetricRow, RunRecord, UnitTimings, provenance
from erasebench.specs import (
    EraserSpec,
    ErasureRequest,
    GenerationSpec,
    ModelSpec,
    RunSpec,
    TaskSpec,
)


def _record(eraser, concept, edit, training=None, steps=2):
    spec = RunSpec(eraser=EraserSpec(name=eraser), request=ErasureRequest(concepts=(concept,)),
                   task=TaskSpec(name="mock"), model=ModelSpec(id="tiny"),
                   generation=GenerationSpec(steps=steps))
    timings = None if training is None else UnitTimings(
        erasure=0.0, erasure_trained=False, training=training, training_device="cuda:0",
        images=1.0, scoring=1.0, images_drawn=0)
    return RunRecord(run_id=spec.run_id(), spec=spec, task_version="1", model_fingerprint="f",
                     edit_digest=edit, image_count=4, provenance=provenance("cpu", timings),
                     metrics=[MetricRow(metric="m", value=1.0, higher_is_better=True)])


def test_erasure_time_is_the_median_over_distinct_erasures_and_absent_where_not_kept():
    records = [
        _record("mock", "cat", "e1", 10.0), _record("mock", "dog", "e2", 30.0),
        _record("mock", "cat", "e1", 10.0, steps=3),  # the same erasure, another unit
        _record("sd", "cat", NO_CHANGE, 0.001),  # changes nothing: no erasure to time
        _record("uce", "cat", "e3"),  # a record written before timings were kept
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


@pytest.mark.parametrize(("seconds", "text"), [
    (0.153, "0.15 s"), (3.24, "3.2 s"), (42.4, "42 s"), (444, "7.4 min"),
    (2526, "42 min"), (7560, "2.1 h"), (40_000, "11 h")])
def test_erasure_times_read_with_two_or_three_digits(seconds, text):
    assert format_seconds(seconds) == text
