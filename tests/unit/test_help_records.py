import pytest

from erasebench.errors import CorruptFileError
from erasebench.help_records import HelpRecord, help_records, write_help_record


def helped(run_id, drawn):
    return HelpRecord(run_id=run_id, eraser="uce", task="mock", model="tiny", device="cpu",
                      images_drawn=drawn, drawing=1.5)


def test_each_helper_writes_its_own_record_and_all_are_read_back(tmp_path):
    assert help_records(tmp_path) == []  # no helped/ folder yet
    # Two helpers of one unit, and one of another: three files, none overwritten.
    written = [write_help_record(tmp_path, record)
               for record in (helped("a", 3), helped("a", 5), helped("b", 7))]
    assert len(set(written)) == 3 and all(path.parent == tmp_path / "helped"
                                          for path in written)
    read = help_records(tmp_path)
    assert sorted((record.run_id, record.images_drawn) for record in read) == [
        ("a", 3), ("a", 5), ("b", 7)]
    assert read[0].created_at.startswith("20")  # dated when made


def test_a_damaged_help_record_is_named(tmp_path):
    path = write_help_record(tmp_path, helped("a", 3))
    path.write_text('{"run_id": "a", "images_drawn": ')
    with pytest.raises(CorruptFileError, match=path.name):
        help_records(tmp_path)
