"""A topic's buffer, kept in front with what followers read from Redis (`Topic.keep_behind`):
only a read that reaches the buffer, of the same stream, within the buffer's bounds."""

import pytest

from spool.api.hub import MAX_BUFFER_BYTES, Entry, Topic, entry
from spool.shared.ids import StreamId
from spool.shared.keys import Keys, SessionRef

pytestmark = pytest.mark.unit


def at(ms: int, data: bytes = b"{}") -> Entry:
    return entry(b"%d-0" % ms, b"text.delta", b"j", data)


def topic_with(base: StreamId, buffered: list[Entry], size: int = 512) -> Topic:
    topic = Topic(SessionRef("t", "s"), Keys(), size)
    topic.base, topic.last = base, buffered[-1].sid if buffered else base
    topic.buffer.extend(buffered)
    topic.buffered_bytes = sum(len(e.frame) for e in buffered)
    return topic


def ids(topic: Topic) -> list[int]:
    return [e.sid[0] for e in topic.buffer]


def test_a_read_that_reaches_the_buffer_is_kept_in_front_of_it() -> None:
    topic = topic_with((10, 0), [at(11), at(12)])
    topic.keep_behind([at(5), at(8), at(10), at(11), at(12)], (4, 0))
    assert ids(topic) == [5, 8, 10, 11, 12]
    assert topic.base == (4, 0)
    assert topic.covers((4, 0))
    assert not topic.covers((3, 0))
    assert topic.after((4, 0), 10) == list(topic.buffer)


def test_an_empty_buffer_is_reached_at_its_base_entry() -> None:
    topic = topic_with((10, 0), [])  # synced at the stream's last entry, 10-0
    topic.keep_behind([at(5), at(10)], (0, 0))
    assert ids(topic) == [5, 10]
    assert topic.base == (0, 0)


@pytest.mark.parametrize(
    "read",
    [
        [at(5), at(8)],  # ends before the buffer: entries between would be missing
        [at(5), at(9), at(13)],  # passes the buffer's first id without it: another stream
        [],
    ],
)
def test_a_read_that_does_not_reach_the_same_buffer_is_not_kept(read: list[Entry]) -> None:
    topic = topic_with((10, 0), [at(11), at(12)])
    topic.keep_behind(read, (4, 0))
    assert ids(topic) == [11, 12]
    assert topic.base == (10, 0)


def test_a_read_beyond_the_buffers_bounds_is_not_kept() -> None:
    topic = topic_with((10, 0), [at(11)], size=3)
    topic.keep_behind([at(5), at(6), at(7), at(11)], (4, 0))  # 4 entries > 3
    assert ids(topic) == [11]
    big = at(9, b"x" * MAX_BUFFER_BYTES)
    topic.keep_behind([big, at(11)], (8, 0))
    assert ids(topic) == [11]
    topic.keep_behind([at(7), at(11)], (6, 0))  # within both bounds
    assert ids(topic) == [7, 11]


def test_nothing_is_kept_while_the_topic_must_sync_or_is_gone() -> None:
    dirty, gone = topic_with((10, 0), [at(11)]), topic_with((10, 0), [at(11)])
    dirty.dirty, gone.gone = True, True
    for topic in (dirty, gone):
        topic.keep_behind([at(5), at(11)], (4, 0))
        assert topic.base == (10, 0)
