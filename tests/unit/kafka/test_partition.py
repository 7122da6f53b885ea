"""murmur2 as Kafka's Java client computes it (vectors from Kafka's own UtilsTest)."""
import pytest

from streams.kafka.partition import murmur2, partition_for


@pytest.mark.parametrize("data,expected", [
    (b"21", -973932308),
    (b"foobar", -790332482),
    (b"a-little-bit-long-string", -985981536),
    (b"a-little-bit-longer-string", -1486304829),
    (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
    (b"abc", 479470107),
])
def test_murmur2_matches_the_java_client(data, expected):
    assert murmur2(data) == expected


def test_partition_is_positive_and_in_range():
    for n in (1, 3, 12):
        for key in (b"", b"u1", "사용자".encode(), bytes(range(256))):
            assert 0 <= partition_for(key, n) < n
    with pytest.raises(ValueError):
        partition_for(b"x", 0)
