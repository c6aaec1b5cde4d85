from __future__ import annotations

import asyncio
import logging

from reactive.log_capture import MAX_LINES, capture_logs


def test_print_and_logging_become_log_lines():
    with capture_logs() as logs:
        print("hello", 42)
        print("partial", end="")
        logging.getLogger("user.module").warning("careful %s", "now")
    assert logs.finish() == ["[LOG] hello 42", "[WARN] careful now", "[LOG] partial"]


def test_output_outside_a_capture_is_untouched(capsys):
    with capture_logs():
        pass
    print("outside")
    assert "outside" in capsys.readouterr().out


async def test_concurrent_functions_do_not_mix_lines():
    async def run(name):
        with capture_logs() as logs:
            for i in range(3):
                print(name, i)
                await asyncio.sleep(0)
        return logs.finish()

    a, b = await asyncio.gather(run("a"), run("b"))
    assert a == ["[LOG] a 0", "[LOG] a 1", "[LOG] a 2"]
    assert b == ["[LOG] b 0", "[LOG] b 1", "[LOG] b 2"]


def test_too_many_lines_are_dropped_with_a_note():
    with capture_logs() as logs:
        for i in range(MAX_LINES + 10):
            print(i)
    lines = logs.finish()
    assert len(lines) == MAX_LINES + 1 and "10 more log lines were dropped" in lines[-1]
