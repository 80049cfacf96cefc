"""mpsim.progress.Activity on a fake clock: the lines a terminal and a log see, and none with quiet."""

from __future__ import annotations

import io
import threading

import pytest

from mpsim.progress import Activity, about, clock_time


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    "seconds, clock, rough",
    [
        (0, "0:00", "about 10 s"),
        (44.9, "0:44", "about 40 s"),
        (61, "1:01", "about 1 min"),
        (3725, "1:02:05", "about 62 min"),
        (9000, "2:30:00", "about 2.5 h"),
    ],
)
def test_durations(seconds: float, clock: str, rough: str) -> None:
    assert clock_time(seconds) == clock and about(seconds) == rough


def test_log_lines_not_on_a_terminal() -> None:
    """A line at the start, one every 30 s however often it is updated, one at the end."""
    clock, stream = FakeClock(), io.StringIO()
    activity = Activity(
        "Yosys synthesis",
        estimate_s=250,
        basis="16 PEs",
        prefix="[cost] ",
        stream=stream,
        tty=False,
        clock=clock,
        ticker=False,
    )
    with activity:
        for _ in range(75):
            clock.now += 1
            activity.update()
    assert stream.getvalue().splitlines() == [
        "[cost] Yosys synthesis: started; estimate about 4 min (16 PEs)",
        "[cost] Yosys synthesis: 0:30 elapsed; estimate about 4 min (16 PEs)",
        "[cost] Yosys synthesis: 1:00 elapsed; estimate about 4 min (16 PEs)",
        "[cost] Yosys synthesis: done in 1:15",
    ]


def test_one_line_rewritten_on_a_terminal() -> None:
    clock, stream = FakeClock(), io.StringIO()
    activity = Activity("Verilator build", stream=stream, tty=True, clock=clock, ticker=False)
    with activity:
        clock.now += 1
        activity.update()
        clock.now += 1.5
        activity.update()
    assert stream.getvalue() == (
        "\rVerilator build: 0:00 elapsed\x1b[K"
        "\rVerilator build: 0:01 elapsed\x1b[K"
        "\rVerilator build: 0:02 elapsed\x1b[K"
        "\rVerilator build: done in 0:02\x1b[K\n"
    )


@pytest.mark.parametrize("error, word", [(KeyboardInterrupt, "interrupted"), (RuntimeError, "failed")])
def test_the_end_line_says_how_it_ended(error: type[BaseException], word: str) -> None:
    clock, stream = FakeClock(), io.StringIO()
    with pytest.raises(error), Activity("nextpnr place and route", stream=stream, tty=False, clock=clock, ticker=False):
        clock.now += 12
        raise error
    assert stream.getvalue().splitlines()[-1] == f"nextpnr place and route: {word} after 0:12"


def test_quiet_writes_nothing() -> None:
    stream = io.StringIO()
    with Activity("Yosys synthesis", estimate_s=9, quiet=True, stream=stream, tty=True) as activity:
        activity.update()
    assert stream.getvalue() == ""


def test_the_ticker_updates_from_its_thread() -> None:
    """The background thread calls update (no timing asserted: it is only awaited)."""
    called = threading.Event()

    class Watched(Activity):
        def update(self) -> None:
            called.set()

    with Watched("Icarus build", stream=io.StringIO(), tty=True, tick_s=0.001):
        assert called.wait(10)


def test_bad_estimate() -> None:
    with pytest.raises(ValueError, match=r"^estimate must be positive seconds or None, not -1$"):
        Activity("Yosys synthesis", estimate_s=-1)


def test_a_quick_step_shows_nothing_a_slow_one_shows_up_late() -> None:
    clock, stream = FakeClock(), io.StringIO()
    quick = Activity("Verilog generation", stream=stream, tty=False, clock=clock, ticker=False, show_after_s=3)
    with quick:
        clock.now += 2.9
        quick.update()
    assert stream.getvalue() == ""
    slow = Activity("Verilog generation", stream=stream, tty=False, clock=clock, ticker=False, show_after_s=3)
    with slow:
        for _ in range(40):
            clock.now += 1
            slow.update()
    assert stream.getvalue().splitlines() == [
        "Verilog generation: 0:03 elapsed",
        "Verilog generation: 0:33 elapsed",
        "Verilog generation: done in 0:40",
    ]
