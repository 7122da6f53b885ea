"""The progress reporter: its formatting and its redraw cadence, with a fake clock."""
import io

from streams.progress import Progress, format_duration, format_progress, format_rate


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_durations():
    assert format_duration(0) == "0:00"
    assert format_duration(59.4) == "0:59"
    assert format_duration(61) == "1:01"
    assert format_duration(3 * 3600 + 7 * 60 + 5) == "3:07:05"
    assert format_duration(-3) == "0:00"


def test_rates():
    assert format_rate(0) == "0.0/s"
    assert format_rate(12.34) == "12.3/s"
    assert format_rate(4567) == "4,567/s"
    assert format_rate(123_456) == "123k/s"


def test_line_with_total_has_percent_rate_and_eta():
    line = format_progress("reading x", 250, 1000, 5.0)
    assert line == "reading x  250/1,000   25.0%  50.0/s  ETA 0:15"


def test_line_when_done_shows_elapsed_not_eta():
    assert format_progress("x", 1000, 1000, 20.0) == "x  1,000/1,000  100.0%  50.0/s  in 0:20"


def test_line_without_total_or_time():
    assert format_progress("x", 0, None, 0.0) == "x  0  0.0/s  in 0:00"
    assert format_progress("", 10, 100, 0.0) == "10/100   10.0%  0.0/s  ETA --:--"


def test_tty_redraws_in_place_at_most_five_times_a_second():
    clock, out = Clock(), io.StringIO()
    with Progress(100, "r", stream=out, clock=clock, tty=True) as p:
        for _ in range(10):           # 10 advances within 0.1 s: no redraw yet
            clock.now += 0.01
            p.advance()
        assert out.getvalue() == ""
        clock.now += 0.15
        p.advance()
        assert out.getvalue().count("\r") == 1 and "\n" not in out.getvalue()
    text = out.getvalue()
    assert text.count("\r") == 2 and text.endswith("\n")   # final redraw ends the line
    assert "11/100" in text


def test_tty_pads_over_a_longer_previous_line():
    clock, out = Clock(), io.StringIO()
    p = Progress(None, "label", stream=out, clock=clock, tty=True)
    p.done = 10**9
    clock.now += 1
    p.advance(0)
    p.done = 1
    p.finish()
    first, second = out.getvalue().split("\r")[1:]
    assert len(second.rstrip("\n")) == len(first)


def test_logs_get_one_line_every_five_seconds_and_a_last_one():
    clock, out = Clock(), io.StringIO()
    with Progress(1000, "r", stream=out, clock=clock, tty=False) as p:
        for i in range(80):           # 80 advances over exactly 10 s
            clock.now += 0.125
            p.advance(13 if i % 2 else 12)
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    assert len(lines) == 3            # at ~5 s, at ~10 s, and the final line
    assert lines[-1].startswith("r  1,000/1,000  100.0%")


def test_finish_twice_writes_once_and_disabled_writes_nothing():
    out = io.StringIO()
    p = Progress(1, "r", stream=out, clock=Clock(), tty=False)
    p.finish()
    p.finish()
    assert len(out.getvalue().splitlines()) == 1
    quiet = io.StringIO()
    with Progress(1, "r", stream=quiet, clock=Clock(), tty=False, enabled=False) as q:
        q.advance()
    assert quiet.getvalue() == ""
