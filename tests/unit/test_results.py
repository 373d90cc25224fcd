import json

import pytest

from erasebench.errors import CorruptFileError, UserError
from erasebench.results import (
    COLUMNS,
    SCHEMA_VERSION,
    MetricRow,
    ResultStore,
    RunRecord,
    UnitTimings,
    load_results,
    provenance,
)


@pytest.fixture
def record(make_record):
    """``record(eraser, values)``: a record of two metrics, one headline and one per split."""
    def make(eraser="sd", values=(0.5, 0.25)):
        metrics = [MetricRow(metric="change_erase", value=values[0], higher_is_better=True),
                   MetricRow(metric="change_preserve", value=values[1],
                             higher_is_better=False, split="s1", seed=3)]
        return make_record(eraser, metrics=metrics, images=8)
    return make


def test_written_records_load_as_a_tidy_table(tmp_path, record):
    store = ResultStore(tmp_path)
    store.write(record("sd"))
    store.write(record("mock", (0.9, 0.1)))
    frame = load_results(tmp_path)
    assert list(frame.columns) == COLUMNS
    assert len(frame) == 4
    row = frame[(frame.eraser == "mock") & (frame.metric == "change_preserve")].iloc[0]
    assert (row.value, row.split, row.seed, row.higher_is_better) == (0.1, "s1", 3, False)
    assert row.request == "cat" and row.task == "mock" and row.task_version == "1"


def test_the_table_tells_apart_runs_drawn_otherwise_or_with_other_task_options(
        tmp_path, make_record):
    # Runs of one eraser config drawn with other steps, or scored with other task options,
    # differed only by run id: grouped by eraser, task and metric they were averaged into
    # a number nobody ran.
    from erasebench.specs import TaskSpec

    store = ResultStore(tmp_path)
    store.write(make_record("sd", steps=2))
    store.write(make_record("sd", steps=10))
    optioned = make_record("sd", steps=2)
    spec = optioned.spec.model_copy(update={"task": TaskSpec(name="mock",
                                                             options={"images": 2})})
    store.write(optioned.model_copy(update={"spec": spec, "run_id": spec.run_id()}))
    frame = load_results(tmp_path)
    assert len(frame) == 3 and frame.config_hash.nunique() == 1
    assert sorted(frame.steps) == [2, 2, 10]
    assert set(frame.scheduler) == {"ddim"} and set(frame.guidance) == {7.5}
    assert set(frame.precision) == {"auto"} and frame.height.isna().all()
    assert frame.task_options_hash.nunique() == 2
    settings = [column for column in COLUMNS if column not in ("value", "run_id")]
    assert len(frame.groupby(settings, dropna=False)) == 3


def test_a_damaged_record_is_detected(tmp_path, record):
    store = ResultStore(tmp_path)
    path = store.write(record())
    raw = json.loads(path.read_text())
    raw["metrics"][0]["value"] = 0.75  # edited by hand, or bit rot
    path.write_text(json.dumps(raw))
    with pytest.raises(CorruptFileError, match="checksum"):
        store.read(path)
    assert not store.is_done(raw["run_id"])
    path.write_text(path.read_text()[:40])  # truncated
    with pytest.raises(CorruptFileError):
        store.read(path)


def test_timings_are_stored_and_checked_and_older_records_keep_their_checksum(
        tmp_path, record):
    store = ResultStore(tmp_path)
    timings = UnitTimings(erasure=0.5, erasure_trained=True, training=0.5,
                          training_device="cpu", images=2.0, scoring=0.25, images_drawn=8,
                          images_awaited=0.75, batch=4, attacking=0.125)
    timed = record()
    timed.provenance = provenance("cpu", timings)
    path = store.write(timed)
    assert store.read(path).provenance.timings == timings
    raw = json.loads(path.read_text())
    raw["provenance"]["timings"]["images"] = 1.0
    path.write_text(json.dumps(raw))
    with pytest.raises(CorruptFileError, match="checksum"):
        store.read(path)
    # A record of schema version 1, as erasebench wrote it before timings were kept: no
    # timings key in its provenance, and the checksum over the record as it was.
    old = record("mock")
    old.schema_version = 1
    body = old.model_dump(mode="json", exclude={"checksum"})
    del body["provenance"]["timings"]
    assert "timings" not in json.dumps(body)
    old.checksum = RunRecord.model_validate(body).content_checksum()
    path = store.path(old.run_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**body, "checksum": old.checksum}))
    read = store.read(path)
    assert (read.schema_version, read.provenance.timings) == (1, None)
    # Versions 2, 3, 5 and 6: timings without scoring_drawn, images_awaited, batch and
    # attacking, without the latter three, the latter two, or without attacking, the
    # checksum over them as they were.
    for version, added in ((2, ["scoring_drawn", "images_awaited", "batch", "attacking"]),
                           (3, ["images_awaited", "batch", "attacking"]),
                           (5, ["batch", "attacking"]), (6, ["attacking"])):
        old = record("mock")
        old.schema_version = version
        old.provenance = provenance("cpu", timings)
        body = old.model_dump(mode="json", exclude={"checksum"})
        for key in added:
            del body["provenance"]["timings"][key]
        old.checksum = RunRecord.model_validate(body).content_checksum()
        path.write_text(json.dumps({**body, "checksum": old.checksum}))
        read = store.read(path)
        assert read.schema_version == version
        assert read.provenance.timings == timings.model_copy(
            update=dict.fromkeys(added))
        waiting = 0.0 if "images_awaited" in added else 0.75  # none known before schema 4
        assert read.provenance.timings.images_less_waiting() == 2.0 - waiting


def test_a_record_keeps_the_uncommitted_changes_it_came_from_and_one_without_has_no_key(
        tmp_path, record):
    store = ResultStore(tmp_path)
    patched = record()
    patched.provenance.git_sha, patched.provenance.code_changes = "1a" * 20, "9f8e7d6c" * 2
    path = store.write(patched)
    assert store.read(path).provenance.code_changes == "9f8e7d6c" * 2
    raw = json.loads(path.read_text())
    raw["provenance"]["code_changes"] = ""  # rows from patched code passed off as clean
    path.write_text(json.dumps(raw))
    with pytest.raises(CorruptFileError, match="checksum"):
        store.read(path)
    clean = record("mock")
    clean.provenance.code_changes = ""
    path = store.write(clean)  # as a record written before changes were kept
    assert "code_changes" not in json.loads(path.read_text())["provenance"]
    assert store.read(path).provenance.code_changes == ""


def test_a_newer_schema_is_refused_with_advice(tmp_path, record):
    store = ResultStore(tmp_path)
    path = store.write(record())
    raw = json.loads(path.read_text())
    raw["schema_version"] = SCHEMA_VERSION + 1
    path.write_text(json.dumps(raw))
    with pytest.raises(UserError, match="upgrade erasebench"):
        load_results(tmp_path)


def test_no_results_give_an_empty_table_with_the_columns(tmp_path, record):
    frame = load_results(tmp_path)
    assert frame.empty and list(frame.columns) == COLUMNS


def test_a_unit_whose_samples_are_not_as_its_record_says_is_not_done(tmp_path, record):
    store = ResultStore(tmp_path)
    made = record("mock")
    made.samples_digest = store.write_samples(made.run_id, {"m": [1.0, 0.0]})
    store.write(made)
    assert store.is_done(made.run_id)
    assert store.read(store.path(made.run_id)).samples_digest == made.samples_digest
    assert list(store.samples([made.run_id], {made.run_id: made.samples_digest}).value) == [
        1.0, 0.0]
    store.samples_path(made.run_id).unlink()  # written, then lost
    assert not store.is_done(made.run_id)
    with pytest.raises(CorruptFileError, match="samples file .* is missing"):
        store.samples([made.run_id], {made.run_id: made.samples_digest})
    # A record of version 4 has no digest: a unit without samples is done, and so is one
    # whose file reads; one whose file does not is redone.
    old = record("sd")
    store.write(old)
    assert "samples_digest" not in json.loads(store.path(old.run_id).read_text())
    assert store.is_done(old.run_id)
    store.write_samples(old.run_id, {"m": [0.5]})
    assert store.is_done(old.run_id)
    store.samples_path(old.run_id).write_bytes(b"PAR1 and nothing else")
    assert not store.is_done(old.run_id)
    with pytest.raises(CorruptFileError, match="is unreadable"):
        store.samples([old.run_id])
