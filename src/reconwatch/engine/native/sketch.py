"""Bounded-memory sets and counts for the native detectors: an exact set that turns into a Bloom filter, HyperLogLog, a capped LRU map."""

from __future__ import annotations

import hashlib
import math
import sys
from collections import OrderedDict
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


def _hash64(item: str, salt: int = 0) -> int:
    """A stable 64-bit hash (Python's own hash() differs between processes)."""
    digest = hashlib.blake2b(item.encode(), digest_size=8, salt=salt.to_bytes(8, "little"))
    return int.from_bytes(digest.digest(), "little")


class BloomFilter:
    """Set membership with no false negatives and a false-positive rate of at most `error` while
    it holds at most `capacity` items (m = -n ln p / ln(2)^2 bits, k = m/n ln 2 hashes, from two
    64-bit hashes by double hashing)."""

    __slots__ = ("bits", "capacity", "count", "hashes", "size")

    def __init__(self, capacity: int, error: float) -> None:
        self.capacity = capacity
        self.size = max(64, math.ceil(-capacity * math.log(error) / math.log(2) ** 2))
        self.hashes = max(1, round(self.size / capacity * math.log(2)))
        self.bits = bytearray((self.size + 7) // 8)
        self.count = 0

    def _positions(self, item: str) -> list[int]:
        h1, h2 = _hash64(item), _hash64(item, 1) | 1
        return [(h1 + i * h2) % self.size for i in range(self.hashes)]

    def add(self, item: str) -> None:
        for pos in self._positions(item):
            self.bits[pos >> 3] |= 1 << (pos & 7)
        self.count += 1

    def __contains__(self, item: str) -> bool:
        return all(self.bits[pos >> 3] & (1 << (pos & 7)) for pos in self._positions(item))

    def error_now(self) -> float:
        """The expected false-positive rate at the current fill: (1 - e^(-kn/m))^k."""
        k, n, m = self.hashes, self.count, self.size
        return float((1 - math.exp(-k * n / m)) ** k)

    def nbytes(self) -> int:
        return sys.getsizeof(self.bits) + 64


class PeerSet:
    """Learned destinations: exact up to `exact` items, then (all of them) in a Bloom filter of
    `capacity` items at `error` false positives; a false positive counts a new destination as
    known (it can only hide a destination, never invent one)."""

    __slots__ = ("bloom", "capacity", "error", "exact", "items")

    def __init__(self, exact: int, capacity: int, error: float) -> None:
        self.exact = exact
        self.capacity = capacity
        self.error = error
        self.items: set[str] | None = set()
        self.bloom: BloomFilter | None = None

    def add(self, item: str) -> None:
        if self.items is not None:
            self.items.add(item)
            if len(self.items) > self.exact:
                self.bloom = BloomFilter(self.capacity, self.error)
                for known in self.items:
                    self.bloom.add(known)
                self.items = None
        elif self.bloom is not None and item not in self.bloom:
            self.bloom.add(item)

    def __contains__(self, item: str) -> bool:
        if self.items is not None:
            return item in self.items
        return self.bloom is not None and item in self.bloom

    def __len__(self) -> int:
        if self.items is not None:
            return len(self.items)
        return self.bloom.count if self.bloom is not None else 0

    @property
    def approximate(self) -> bool:
        return self.items is None

    def nbytes(self) -> int:
        if self.items is not None:
            return sys.getsizeof(self.items) + sum(sys.getsizeof(i) for i in self.items)
        return self.bloom.nbytes() if self.bloom is not None else 0


class HyperLogLog:
    """Distinct count in 2^p one-byte registers (Flajolet et al. 2007, with the small-range
    linear counting correction): standard error 1.04 / sqrt(2^p), 1.6 % at p = 12 (4 KiB)."""

    __slots__ = ("p", "registers")

    def __init__(self, p: int = 12) -> None:
        self.p = p
        self.registers = bytearray(1 << p)

    def add(self, item: str) -> None:
        h = _hash64(item)
        index = h >> (64 - self.p)
        rest = (h << self.p) & ((1 << 64) - 1)
        rank = 64 - self.p + 1 if rest == 0 else 65 - rest.bit_length()
        rank = min(rank, 64 - self.p + 1)
        if rank > self.registers[index]:
            self.registers[index] = rank

    def count(self) -> int:
        m = len(self.registers)
        alpha = 0.7213 / (1 + 1.079 / m)
        estimate = alpha * m * m / sum(2.0**-r for r in self.registers)
        zeros = self.registers.count(0)
        if estimate <= 2.5 * m and zeros:
            estimate = m * math.log(m / zeros)
        return round(estimate)

    @property
    def standard_error(self) -> float:
        return 1.04 / math.sqrt(len(self.registers))

    def nbytes(self) -> int:
        return sys.getsizeof(self.registers)


class BoundedLru(Generic[K, V]):
    """A map holding at most `limit` entries, the least recently set dropped first."""

    __slots__ = ("dropped", "items", "limit")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.items: OrderedDict[K, V] = OrderedDict()
        self.dropped = 0

    def get(self, key: K) -> V | None:
        return self.items.get(key)

    def set(self, key: K, value: V) -> None:
        self.items[key] = value
        self.items.move_to_end(key)
        while len(self.items) > self.limit:
            self.items.popitem(last=False)
            self.dropped += 1

    def pop(self, key: K) -> V | None:
        return self.items.pop(key, None)

    def __len__(self) -> int:
        return len(self.items)
