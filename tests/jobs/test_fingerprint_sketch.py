"""The SDK sketches a model's small tensors together: the same fingerprint, to the bit.

``sdk.tensor_fingerprint`` sketches small chunks of consecutive positions in one pass (a model
of many small tensors paid numpy's fixed cost once per tensor before). Verification compares
fingerprints from heaters running either version, so the sketch must be the one the chunk by
chunk definition below gives, bit for bit, whatever the tensors' sizes and order.
"""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from heatgrid.jobs import sdk

_SIZE, _NONZEROS, _SEED = 64, 4, 0x6865617467726964
_CHUNK = 1 << 20


def _chunk_sketch(values: np.ndarray, first_index: int) -> np.ndarray:
    """The sketch of one chunk, as the SDK computed it for each chunk alone."""
    z = np.arange(first_index, first_index + values.size, dtype=np.uint64)
    z *= np.uint64(0x9E3779B97F4A7C15)
    z += np.uint64(_SEED)
    z ^= z >> np.uint64(30)
    z *= np.uint64(0xBF58476D1CE4E5B9)
    z ^= z >> np.uint64(27)
    z *= np.uint64(0x94D049BB133111EB)
    z ^= z >> np.uint64(31)
    key = z >> np.uint64(64 - _NONZEROS)
    key <<= np.uint64(6)
    key |= z & np.uint64(_SIZE - 1)
    patterns = 1 << _NONZEROS
    sums = np.bincount(key.astype(np.intp), weights=values, minlength=patterns * _SIZE).reshape(
        patterns, _SIZE
    )
    out = np.zeros(_SIZE, dtype=np.float64)
    for t in range(_NONZEROS):
        positive = (np.arange(patterns) >> (_NONZEROS - 1 - t)) & 1 == 1
        signs = np.where(positive, 1.0, -1.0)[:, np.newaxis]
        out += np.roll(np.add.reduce(signs * sums, axis=0), t * (_SIZE // _NONZEROS))
    return out / math.sqrt(_NONZEROS)


def _reference(tensors: dict[str, np.ndarray]) -> dict[str, object]:
    """The fingerprint chunk by chunk: each tensor's chunks of up to 2**20 values alone."""
    digest = hashlib.sha256()
    sketch = np.zeros(_SIZE, dtype=np.float64)
    squares, offset = 0.0, 0
    for name in sorted(tensors):
        array = np.ascontiguousarray(tensors[name])
        digest.update(f"{name}\0{array.dtype.str}\0{array.shape}\0".encode())
        flat = array.reshape(-1)
        digest.update(flat.view(np.uint8).data)
        for start in range(0, flat.size, _CHUNK):
            chunk = flat[start : start + _CHUNK].astype(np.float64)
            squares += float(np.add.reduce(chunk * chunk))
            sketch += _chunk_sketch(chunk, offset + start)
        offset += flat.size
    return {
        "values_sha256": digest.hexdigest(),
        "count": offset,
        "norm": math.sqrt(squares),
        "sketch": [float(x) for x in sketch],
    }


def _tensors(sizes: list[int], seed: int, dtype: str = "float32") -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        f"layer{index:03d}": (rng.standard_normal(size) * 3).astype(dtype)
        for index, size in enumerate(sizes)
    }


@settings(max_examples=60, deadline=None)
@given(
    sizes=st.lists(
        st.one_of(
            st.integers(min_value=0, max_value=300),
            st.integers(min_value=(1 << 16) - 300, max_value=(1 << 16) + 300),
        ),
        max_size=12,
    ),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
    dtype=st.sampled_from(["float32", "float64", "float16", "int32", "uint8"]),
)
def test_the_sketch_of_small_tensors_together_is_the_chunk_by_chunk_one(
    sizes: list[int], seed: int, dtype: str
) -> None:
    tensors = _tensors(sizes, seed, dtype)
    assert sdk.tensor_fingerprint(tensors) == _reference(tensors)


@pytest.mark.parametrize(
    "sizes",
    [
        [128, 8192, 128, 16384, 10, 1280],  # the digits example's model (its six tensors)
        [7, (1 << 20) + 5, 3],  # a tensor of two chunks between small ones
        [(1 << 15), (1 << 15), (1 << 15) + 1, 5],  # batches that fill up exactly and past
    ],
)
def test_models_of_mixed_sizes_have_the_chunk_by_chunk_fingerprint(sizes: list[int]) -> None:
    tensors = _tensors(sizes, seed=len(sizes))
    assert sdk.tensor_fingerprint(tensors) == _reference(tensors)
