"""Incremental UTF-8 decoding and stop-string hold-back (no model needed)."""
from structgen.api.textstream import IncrementalText


def test_partial_utf8_is_held_until_complete():
    data = "é日🎉".encode()
    t = IncrementalText()
    pieces = [t.push(data[i:i + 1]) for i in range(len(data))] + [t.finish()]
    assert "".join(pieces) == "é日🎉"
    assert all("\ufffd" not in p for p in pieces)
    assert pieces[0] == "" and pieces[1] == "é"


def test_stop_prefix_is_held_back_then_released():
    t = IncrementalText(stop=["END"])
    assert t.push(b"abcE") == "abc"
    assert t.push(b"x") == "Ex"
    assert t.push(b"EN") == ""
    assert t.push(b"D tail") == ""
    assert t.stopped and t.text == "abcEx"


def test_stop_across_pieces_and_earliest_wins():
    t = IncrementalText(stop=["##", "STOP"])
    out = t.push(b"hello S") + t.push(b"TO") + t.push(b"P and ## more")
    assert t.stopped and t.text == "hello " and out == "hello "


def test_finish_flushes_invalid_trailing_bytes():
    t = IncrementalText()
    assert t.push(b"ok\xe6\x97") == "ok"
    assert t.finish() == "\ufffd"
