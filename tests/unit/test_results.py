import json

import pytest

from erasebench.errors import CorruptFileError, UserError
from erasebench.results import (
    COLUMNS,
    SCHEMA_VERSION,
    MetricRow,
    ResultStore,
    RunRecord,
    load_results,
)
from erasebench.specs import (
    EraserSpec,
    ErasureRequest,
    GenerationSpec,
    ModelSpec,
    RunSpec,
    TaskSpec,
)


def _record(eraser="sd", values=(0.5, 0.25)):
    spec = RunSpec(eraser=EraserSpec(name=eraser), request=ErasureRequest(concepts=("cat",)),
                   task=TaskSpec(name="mock"), model=ModelSpec(id="tiny"),
                   generation=GenerationSpec(steps=2))
    metrics = [MetricRow(metric="change_erase", value=values[0], higher_is_better=True),
               MetricRow(metric="change_preserve", value=values[1], higher_is_better=False,
                         split="s1", seed=3)]
    return RunRecord(run_id=spec.run_id(), spec=spec, task_version="1", model_fingerprint="f",
                     edit_digest="d", image_count=8, metrics=metrics)


def test_written_records_load_as_a_tidy_table(tmp_path):
    store = ResultStore(tmp_path)
    store.write(_record("sd"))
    store.write(_record("mock", (0.9, 0.1)))
    frame = load_results(tmp_path)
    assert list(frame.columns) == COLUMNS
    assert len(frame) == 4
    row = frame[(frame.eraser == "mock") & (frame.metric == "change_preserve")].iloc[0]
    assert (row.value, row.split, row.seed, row.higher_is_better) == (0.1, "s1", 3, False)
    assert row.request == "cat" and row.task == "mock" and row.task_version == "1"


def test_a_damaged_record_is_detected(tmp_path):
    store = ResultStore(tmp_path)
    path = store.write(_record())
    raw = json.loads(path.read_text())
    raw["metrics"][0]["value"] = 0.75  # edited by hand, or bit rot
    path.write_text(json.dumps(raw))
    with pytest.raises(CorruptFileError, match="checksum"):
        store.read(path)
    assert not store.is_done(raw["run_id"])
    path.write_text(path.read_text()[:40])  # truncated
    with pytest.raises(CorruptFileError):
        store.read(path)


def test_a_newer_schema_is_refused_with_advice(tmp_path):
    store = ResultStore(tmp_path)
    path = store.write(_record())
    raw = json.loads(path.read_text())
    raw["schema_version"] = SCHEMA_VERSION + 1
    path.write_text(json.dumps(raw))
    with pytest.raises(UserError, match="upgrade erasebench"):
        load_results(tmp_path)


def test_no_results_give_an_empty_table_with_the_columns(tmp_path):
    frame = load_results(tmp_path)
    assert frame.empty and list(frame.columns) == COLUMNS
