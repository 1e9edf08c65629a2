"""Output fingerprints computed on the device: an exact identity of an output without copying it to the host.

`Backend.output_fingerprint` lets the verdict cache (`engine.verdict_cache`) recognise an output that was
verified before without bringing it back to the host and hashing it there (a device-to-host copy and a hash
pass over every byte: 23 s and a large part of 31 s per eager GPU backend per seed preset run on an H200).

The algorithm, the same in every framework:
- the output is taken in C order and its bytes are read as words: the element's own bits as a signed integer
  of its width for 1-, 2- and 4-byte types (bool as 0/1 bytes), two 32-bit words per element for 8-byte
  types; every word is widened to int64, so |w| < 2^31;
- with i the word's index, h1(i) = (i * 2654435761) mod 2^31 and h2(i) = ((i xor (i >> 13)) * 2246822519)
  mod 2^31 (Knuth's and xxHash's odd multipliers; h2 is not linear in i);
- S1 = sum(w_i), S2 = sum(w_i * h1(i)), S3 = sum(w_i * h2(i)), in int64 with wrap-around (mod 2^64): each
  product is below 2^62, only the sums wrap, and every framework here wraps int64 addition (two's complement);
- the fingerprint is `<kind>|<shape>|<dtype>|<S1><S2><S3>` (64-bit hex each): shape and element type are part
  of it, so the same bytes in another shape or type never match.

Exactness and the collision trade-off. A change of any bits of one word changes S1 by d with 0 < |d| < 2^32,
never 0 mod 2^64: any single changed bit or element is always detected. Two words exchanged change S2 by
(w_j - w_i)(h1(i) - h1(j)), nonzero and below 2^64 in magnitude (h1 is a bijection of i mod 2^31): always
detected for outputs under 2^31 words (8 GiB). Other multi-word changes escape only if they cancel in all three
sums at once: for changes unrelated to the weights that is about one chance in 2^64 per sum. The sums are
linear, not cryptographic: an adversary can build a colliding output (three changed words solving three linear
equations), a kernel bug producing such an exact cancellation would need to know the weights. The
host path (`verdict_cache.output_digest`, SHA-256) remains for backends without a fingerprint.

Cost: one pass over the output (for frameworks without fusion, about a dozen elementwise kernels over int64
temporaries, bounded to `CHUNK_WORDS` words at a time so a large output needs little extra memory) and one
tiny copy of three int64 sums to the host, which also forces the evaluation of a lazy output.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

K1 = 2654435761
K2 = 2246822519
MASK = (1 << 31) - 1
SHIFT = 13
CHUNK_WORDS = 1 << 23  # 8 Mi words per chunk: 64 MiB per int64 temporary
VERSION = "fp1"


def text(kind: str, shape: Sequence[int], dtype: str, sums: Sequence[int]) -> str:
    """The fingerprint string of an output with these sums (each taken mod 2^64)."""
    digits = "".join(f"{int(s) & 0xFFFFFFFFFFFFFFFF:016x}" for s in sums)
    return f"{kind}-{VERSION}|{tuple(int(d) for d in shape)}|{dtype}|{digits}"


def word_width(itemsize: int, is_bool: bool) -> int | None:
    """The width in bytes of the words an element of `itemsize` bytes is read as, or None (unsupported)."""
    if is_bool:
        return 1
    if itemsize in (1, 2, 4):
        return itemsize
    return 4 if itemsize == 8 else None


def xp_fingerprint(xp: Any, x: Any, kind: str, to_host: Callable[[Any], Any]) -> str | None:
    """The fingerprint of a NumPy-like array (`numpy`, `cupy`): its words, chunk by chunk, on its own device;
    `to_host` brings the three sums back (one small copy)."""
    shape, dtype = tuple(x.shape), str(x.dtype)
    flat = xp.ascontiguousarray(x).reshape(-1)
    width = word_width(flat.dtype.itemsize, flat.dtype == xp.bool_)
    if width is None:
        return None
    words = flat.view({1: xp.int8, 2: xp.int16, 4: xp.int32}[width])
    acc = xp.zeros(3, dtype=xp.int64)
    for start in range(0, words.size, CHUNK_WORDS):
        w = words[start:start + CHUNK_WORDS].astype(xp.int64)
        i = xp.arange(start, start + w.size, dtype=xp.int64)
        h2 = xp.bitwise_xor(i, xp.right_shift(i, SHIFT))
        h2 *= K2
        h2 &= MASK
        h1 = i
        h1 *= K1
        h1 &= MASK
        h1 *= w
        h2 *= w
        acc += xp.stack([w.sum(dtype=xp.int64), h1.sum(dtype=xp.int64), h2.sum(dtype=xp.int64)])
    return text(kind, shape, dtype, [int(s) for s in to_host(acc)])
