from erasebench.run_progress import RunProgress, format_duration


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_time_left_is_the_images_left_at_the_rate_so_far():
    clock = Clock()
    progress = RunProgress({"small": 1_000, "large": 5_000, "medium": 3_000}, clock=clock)
    assert progress.line() == "0/3 units, 0/9,000 images"  # no rate yet, no guess
    clock.now += 600
    recorded = {"small"}
    progress.update(recorded.__contains__)
    # 1,000 images in 10 min: the 8,000 left take 80 min
    assert progress.line() == "1/3 units, 1,000/9,000 images, about 1 h 20 min left"
    clock.now += 1_800
    recorded |= {"medium", "someone else's unit"}  # another run's units do not count
    progress.update(recorded.__contains__)
    # 4,000 in 40 min: 5,000 left, 50 min
    assert progress.line() == "2/3 units, 4,000/9,000 images, about 50 min left"
    recorded.add("large")
    progress.update(recorded.__contains__)
    assert progress.line() == "3/3 units, 9,000/9,000 images"


def test_durations_read_at_a_glance():
    assert format_duration(42.4) == "42 s"
    assert format_duration(7 * 60 + 20) == "7 min"
    assert format_duration(3 * 3600 + 5 * 60) == "3 h 05 min"
    assert format_duration(59 * 60 + 50) == "1 h 00 min"
