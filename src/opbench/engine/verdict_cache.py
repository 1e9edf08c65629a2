"""Verdicts of outputs already checked: an output bit-identical to one verified before gets that verdict.

A case is measured in 3 worker processes per backend, and often on several backends of one framework; a
deterministic kernel returns the very same bits each time, and checking every element of the same bits again
costs the most host time of a run (30 s per pass of the seed preset on a 2-core VM, 17 s on an H200 host's
16 cores). So after an output is verified element by element, its verdict is kept under a key made of a
SHA-256 digest of the output (`output_digest`: its bytes, shape and element type) and of everything else the
verdict depends on: the case, dtype and seed, the arithmetic mode the process reported, and the digest of
the code that makes inputs and expectations (`reference_cache.code_digest`). A later output with the same key
is the same output, so every element of it has been verified; it gets the stored verdict (status, relative
error, tolerance, detail) without the float64 work. An output that differs in one bit (a nondeterministic scatter,
a reduction in another order) has another digest and is verified in full.

On a device the copy to the host and the hash cost more than the check they avoid (23 s of copies and
much of 31 s of verification per eager GPU backend per seed preset run on an H200). So where the adapter has a
device fingerprint (`Backend.output_fingerprint`: exact sums of the output's words, computed where the output
lives, `backends._fingerprint`), the verdict is also kept under a key made of the fingerprint
(`fingerprint_key`); an output with a known fingerprint key gets its verdict with no copy and no hash, and
its measurement's conditions count it (`FINGERPRINT_HITS`, summed over passes). Outputs smaller than
`FINGERPRINT_MIN_BYTES` skip the fingerprint: their copy and hash cost less than its kernel launches (and
than JAX's compilation of it per output shape).

Entries are small JSON files under the reference cache (`<references>/verdicts/`), written atomically; the
reference cache's bound and eviction cover them. Hashing runs over chunks in the verification thread pool
(hashlib releases the GIL): a fraction of the check's cost.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from opbench.catalog import Case
from opbench.engine.verify import Verdict, _map_chunks

HASH_CHUNK_BYTES = 16 << 20
# Outputs at least this large are fingerprinted on the device before any copy (smaller ones take the host path).
FINGERPRINT_MIN_BYTES = 1 << 20
# The conditions key counting the passes whose verdict came from the device fingerprint (no copy, no hash).
FINGERPRINT_HITS = "verdict_from_fingerprint"


def output_digest(out: np.ndarray, out_dtype: str | None) -> str:
    """SHA-256 of the output's shape, element types and bytes (chunk digests hashed in order).

    SHA-256, not BLAKE2b: CPUs of the last years compute it in hardware (x86 SHA extensions, ARMv8 crypto),
    and OpenSSL, behind hashlib, uses them: 1.36 GB/s per core against BLAKE2b's 0.68 GB/s on the 2-core AMD
    EPYC VM, with the stronger digest. Trade-off: a CPU without those instructions hashes at about half
    BLAKE2b's speed."""
    a = np.asarray(out, order="C")
    raw = a.reshape(-1).view(np.uint8)
    slices = [slice(i, i + HASH_CHUNK_BYTES) for i in range(0, raw.size, HASH_CHUNK_BYTES)] or [slice(0, 0)]
    parts = _map_chunks(lambda sl: hashlib.sha256(raw[sl]).digest(), slices)
    h = hashlib.sha256(f"sha256|{a.shape}|{a.dtype.str}|{out_dtype}".encode())
    for part in parts:
        h.update(part)
    return h.hexdigest()


def verdict_key(case: Case, dtype: str, seed: int, mode: str | None, digest: str) -> str:
    from opbench.engine.reference_cache import code_digest

    text = f"verdict|{code_digest()}|{case.name}|{dtype}|{seed}|{mode}|{digest}"
    return hashlib.sha256(text.encode()).hexdigest()[:40]


def fingerprint_key(case: Case, dtype: str, seed: int, mode: str | None, framework: str, fingerprint: str) -> str:
    """The key of a verdict by the output's device fingerprint (`Backend.output_fingerprint`): like
    `verdict_key`, with the framework and the fingerprint (which names its kind, shape and type) in place of
    the host digest; never equal to a host digest's key."""
    return verdict_key(case, dtype, seed, mode, f"device|{framework}|{fingerprint}")


def _dir() -> Path:
    from opbench.engine.reference_cache import cache_dir

    return cache_dir() / "verdicts"


def enabled() -> bool:
    from opbench.engine.reference_cache import max_total_bytes

    return max_total_bytes() > 0


def lookup(key: str) -> Verdict | None:
    """The stored verdict of an identical output, or None."""
    try:
        d = json.loads((_dir() / f"{key}.json").read_text())
        return Verdict(str(d["status"]), float(d["rel_error"]), float(d["tolerance"]), str(d.get("detail", "")))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def store(key: str, verdict: Verdict) -> None:
    """Keep `verdict` for outputs with this key (atomically; a failure only loses the shortcut)."""
    root = _dir()
    try:
        root.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=root, prefix=".tmp-", suffix=".json")
        with os.fdopen(fd, "w") as f:
            json.dump({"status": verdict.status, "rel_error": verdict.rel_error, "tolerance": verdict.tolerance,
                       "detail": verdict.detail}, f)
        os.replace(tmp, root / f"{key}.json")
    except OSError:
        with contextlib.suppress(OSError, UnboundLocalError):
            os.unlink(tmp)
