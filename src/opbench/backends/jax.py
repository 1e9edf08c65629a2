"""JAX adapters: `jax_cpu` and `jax_gpu`, both `jax.jit`-compiled.

Compilation. `compile` wraps the case's op in a fresh function before `jax.jit`, so every case gets its own
jit cache entry: its first call traces and compiles (the engine records that as first-call time) and every
later call runs the cached executable. Without the fresh wrapper, two cases that share a builder function and
input shapes would share one executable and the second case's first-call time would hide its compilation.
JAX keys that cache weakly on the function, so a finished case's executable goes away with its wrapper.

Forcing and synchronization. JAX dispatches asynchronously: a call returns a future-like array, and the engine
must not stop its clock before every call of a block has finished.
- GPU: `force` keeps a reference to the latest output and `sync` blocks on it. That is enough because XLA's
  GPU client runs the executions of a device in order on one compute stream (jax-ml/jax#4335). Keeping every
  output instead would hold up to `n` outputs alive per block (gigabytes for large outputs at H100
  bandwidth), memory that a hand-written loop frees call by call.
- CPU: the CPU client gives no such order. It runs cheap executions inline in the calling thread (their
  outputs are ready when the call returns), so a later call can finish before an earlier one still running on
  its thread pool: seen here with jax 0.10.2 under load (`tests/test_jax_backend.py` checks that `sync` waits
  for both). So `force` also keeps every output that is not yet ready when the call returns, and `sync` blocks
  on all of them. Inline executions are ready on return and are not kept, so a block of cheap calls holds
  nothing and costs one `is_ready()` check per call.

Layout. JAX has no preferred layout: convolutions take the catalog's channels-last `N x S... x C` input and
`out x k... x in` weights directly through `lax.conv_general_dilated` with dimension numbers
('NWC', 'OWI', 'NWC') / ('NHWC', 'OHWI', 'NHWC'). Only SDPA is transposed: `jax.nn.dot_product_attention` wants
`B x L x H x d`, so q/k/v are transposed before timing and the output is transposed back after it.

Precision. The adapter enables x64 (`jax_enable_x64`) for the whole process as soon as it imports JAX, always:
without it JAX silently turns float64 inputs into float32 and int64 indices into int32. With it every input
keeps the dtype NumPy gave it (Python constants in the ops are weakly typed, so float32 stays float32; a test
checks every family). The matmul precision in force (`jax_default_matmul_precision`, default None = XLA's
DEFAULT) is recorded in `settings()`. On NVIDIA GPUs with tensor cores DEFAULT may run float32 dots and
convolutions in TF32; the verifier then reports them as `reduced-precision`. Set
JAX_DEFAULT_MATMUL_PRECISION=highest to measure full float32 instead (it is recorded).

GPU memory. By default JAX's GPU client grabs 75% of the GPU's memory when it starts, which would starve
torch and MLX in the same process. Importing this module sets `XLA_PYTHON_CLIENT_PREALLOCATE=false` (unless the
user set it) before JAX is imported and before any JAX backend starts, so JAX allocates on demand. Its BFC
allocator still keeps what it allocated; running each backend in its own worker process (`opbench.engine.worker`,
which sets the same variable) removes that too.
"""

from __future__ import annotations

import functools
import importlib.util
import math
import os
from collections.abc import Callable
from typing import Any, ClassVar

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

import numpy as np

from opbench.backends._base import Availability, Backend, Builder, Prepared, missing_module_reason
from opbench.catalog import Case
from opbench.catalog.families import LAYER_NORM_EPS, LEAKY_SLOPE

_GPU_INSTALL_HINT = "pip install 'jax[cuda12]' or 'jax[cuda13]'"
_CONV_DIMENSIONS = {1: ("NWC", "OWI", "NWC"), 2: ("NHWC", "OHWI", "NHWC")}


def _jax() -> Any:
    """JAX, with x64 enabled the first time this adapter touches it (in any process: the one that measures, and
    the one that records `settings()`, which then reports what is really in force)."""
    import jax

    if not jax.config.jax_enable_x64:
        jax.config.update("jax_enable_x64", True)
    return jax


def _jnp() -> Any:
    _jax()
    import jax.numpy as jnp

    return jnp


def _ready(*arrays: Any) -> tuple[Any, ...]:
    """Materialize arrays made before timing (JAX dispatch is asynchronous)."""
    return tuple(_jax().block_until_ready(arrays))


# ------------------------------------------------------------------------------------------------- builders


def _conv(x: Any, w: Any) -> Any:
    dims = x.ndim - 2
    return _jax().lax.conv_general_dilated(x, w, window_strides=(1,) * dims, padding="VALID",
                                           dimension_numbers=_CONV_DIMENSIONS[dims])


def _layer_norm(x: Any, w: Any, b: Any) -> Any:
    jnp = _jnp()
    mean = jnp.mean(x, axis=-1, keepdims=True)
    var = jnp.var(x, axis=-1, keepdims=True)
    return (x - mean) * _jax().lax.rsqrt(var + LAYER_NORM_EPS) * w + b


def _bce(p: Any, t: Any) -> Any:
    jnp = _jnp()
    return -jnp.mean(t * jnp.log(p) + (1 - t) * jnp.log1p(-p))


def _prelu(x: Any, w: Any) -> Any:
    return _jnp().where(x > 0, x, w * x)  # w has shape (1,): one slope for every element


def _simple(fn: Callable[..., Any]) -> Builder:
    return lambda be, case, args: Prepared(fn, args)


def _with_axis(fn: Callable[[Any, int], Any]) -> Builder:
    return lambda be, case, args: Prepared(lambda x, axis=case.axis: fn(x, axis), args)


def _sdpa(be: Backend, case: Case, args: tuple[Any, ...]) -> Prepared:
    """`jax.nn.dot_product_attention` (XLA, or cuDNN where JAX picks it) in its native `B x L x H x d` layout;
    the additive causal mask goes in as `bias`, broadcast over batch and heads.

    JAX computes the softmax in float32 whatever the input type, so float64 SDPA comes out `reduced-precision`:
    that is JAX's behaviour, reported as such. float16 on the CPU fails to compile in JAX (its F16_F16_F32 dot
    preset is GPU-only), so there `_sdpa_core` does the same steps with the default dot precision.
    """
    q, k, v, mask = args
    jnp = _jnp()
    native = _ready(*(jnp.swapaxes(a, 1, 2) for a in (q, k, v)), mask[None, None])
    scale = 1.0 / math.sqrt(case.shapes[0][-1])
    if q.dtype == jnp.float16 and getattr(be, "platform", "") == "cpu":
        op = lambda q, k, v, bias: _sdpa_core(q, k, v, bias, scale)  # noqa: E731
    else:
        op = lambda q, k, v, bias: _jax().nn.dot_product_attention(q, k, v, bias=bias, scale=scale)  # noqa: E731
    return Prepared(op, native, canonical=lambda out: jnp.swapaxes(out, 1, 2))


def _sdpa_core(q: Any, k: Any, v: Any, bias: Any, scale: float) -> Any:
    """JAX's own XLA attention steps (float32 logits and softmax), without the explicit dot precision preset."""
    jnp = _jnp()
    logits = jnp.einsum("BTNH,BSNH->BNTS", q, k, preferred_element_type=jnp.float32) * scale + bias
    probs = _jax().nn.softmax(logits, axis=-1).astype(v.dtype)
    return jnp.einsum("BNTS,BSNH->BTNH", probs, v)


def _builders() -> dict[str, Builder]:
    def jnp_op(name: str) -> Callable[..., Any]:
        return lambda *a, **k: getattr(_jnp(), name)(*a, **k)

    def nn_op(name: str) -> Callable[..., Any]:
        return lambda *a, **k: getattr(_jax().nn, name)(*a, **k)

    return {
        "Argmax": _with_axis(lambda x, axis: _jnp().argmax(x, axis=axis)),
        "BCE": _simple(_bce),
        "Concat": lambda be, case, args: Prepared(lambda a, b, axis=case.axis: _jnp().concatenate([a, b], axis=axis),
                                                  args),
        "Conv1d": _simple(_conv),
        "Conv2d": _simple(_conv),
        "Gather": _simple(lambda x, idx: x[idx]),
        "LayerNorm": _simple(_layer_norm),
        "LeakyReLU": _simple(lambda x: _jax().nn.leaky_relu(x, negative_slope=LEAKY_SLOPE)),
        "Linear": _simple(lambda x, w, b: x @ w + b),  # w is `in x out`: native
        "MatMul": _simple(jnp_op("matmul")),
        "PReLU": _simple(_prelu),
        "ReLU": _simple(nn_op("relu")),
        "ScaledDotProductAttention": _sdpa,
        "Scatter": _simple(lambda y, idx, upd: y.at[idx].set(upd)),  # functional: y itself is never modified
        "ScatterSum": _simple(lambda y, idx, upd: _jnp().zeros_like(y).at[idx].add(upd)),
        "ScatterMax": _simple(lambda y, idx, upd: _jnp().zeros_like(y).at[idx].max(upd)),
        "SeLU": _simple(nn_op("selu")),
        "Sigmoid": _simple(nn_op("sigmoid")),
        "Softmax": _with_axis(lambda x, axis: _jax().nn.softmax(x, axis=axis)),
        "Softplus": _simple(nn_op("softplus")),
        "Sort": _with_axis(lambda x, axis: _jnp().sort(x, axis=axis)),
        "Sum": _with_axis(lambda x, axis: _jnp().sum(x, axis=axis)),
        "SumAll": _simple(lambda x: _jnp().sum(x)),
    }


# ------------------------------------------------------------------------------------------------- adapters


class JAXBackend(Backend):
    framework = "jax"
    packages = ("jax", "jaxlib", "jax-cuda12-plugin", "jax-cuda13-plugin")
    compiled = True
    # `shares_input_memory` stays True: on the CPU, `device_put` aliases a 64-byte-aligned NumPy buffer (a
    # mapped cache entry is page-aligned: 0.03 s for 2 GB, and a later write shows through), and copies others
    builders = _builders()
    # jitted by `compile` like every case; XLA may elide a plain copy, so the copy adds one
    probes: ClassVar[dict[str, Builder]] = {
        "copy": lambda be, probe, args: Prepared(lambda a: a + 1, args, how="jit(x + 1) (XLA may elide a plain copy)"),
        "read": lambda be, probe, args: Prepared(lambda a: _jnp().sum(a), args, how="jit(jnp.sum)(x)"),
    }
    unsupported: ClassVar[dict[str, str]] = {}  # every catalog family has a builder
    platform = "cpu"

    def __init__(self) -> None:
        self._device: Any = None
        self._last: Any = None
        self._pending: list[Any] = []  # outputs of this block that were still running (CPU, see module doc)

    # --- discovery -------------------------------------------------------------------------------------
    def availability(self) -> Availability:
        if importlib.util.find_spec("jax") is None:
            return Availability(False, missing_module_reason("jax", "jax"))
        jax = _jax()
        try:
            device = jax.devices(self.platform)[0]
        except RuntimeError as exc:
            return Availability(False, self._unavailable_reason(jax, exc))
        return Availability(True, f"jax {jax.__version__} on {self._describe(device)} (jit)")

    def _unavailable_reason(self, jax: Any, exc: BaseException) -> str:
        return f"jax {jax.__version__} has no CPU device: {str(exc).splitlines()[0]}"

    def _describe(self, device: Any) -> str:
        return "the CPU"

    def setup(self) -> None:
        self._device = _jax().devices(self.platform)[0]  # `_jax()` enables x64

    def preload(self) -> None:
        _jax()  # no device is touched until `devices()`

    def compile_cache_env(self, directory: str) -> dict[str, str]:
        """JAX's persistent compilation cache in `directory`, with every compilation cached: pass 1 of a JAX
        backend compiles each case (its first call shows it); passes 2 and 3 load the executable instead of
        compiling it again (XLA took 19 s of first calls per pass of the seed preset on an H200). torch.compile
        (Inductor's FX graph and Triton caches) and MLX's CUDA kernels (its PTX cache) already keep theirs on
        disk between processes. A cache the user set is left alone."""
        if os.environ.get("JAX_COMPILATION_CACHE_DIR"):
            return {}
        return {"JAX_COMPILATION_CACHE_DIR": directory, "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
                "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0"}

    def versions(self) -> dict[str, str]:
        jax = _jax()
        import jaxlib

        return {"jax": jax.__version__, "jaxlib": jaxlib.__version__}

    def settings(self) -> dict[str, Any]:
        jax = _jax()
        device = self._device if self._device is not None else jax.devices(self.platform)[0]
        return {
            "jax_device": f"{device.platform}:{device.id} ({device.device_kind})",
            "jax_enable_x64": bool(jax.config.jax_enable_x64),
            "jax_default_matmul_precision": str(jax.config.jax_default_matmul_precision or "default"),
            "xla_python_client_preallocate": os.environ.get("XLA_PYTHON_CLIENT_PREALLOCATE", ""),
            "xla_python_client_mem_fraction": os.environ.get("XLA_PYTHON_CLIENT_MEM_FRACTION", ""),
            "xla_flags": os.environ.get("XLA_FLAGS", ""),
        }

    def precision_modes(self) -> dict[str, Any]:
        """`jax.default_matmul_precision`: highest = IEEE float32 dots and convolutions; high = TF32 on NVIDIA
        GPUs (bf16x3 on TPUs); default = what XLA picks (TF32 on NVIDIA GPUs with tensor cores). Applies to
        computations traced inside the context, which is where each case's jit traces on its first call."""
        from opbench.backends._base import PrecisionMode  # part of the protocol since precision modes exist

        return {mode: PrecisionMode(f'jax.default_matmul_precision("{mode}")', strict=mode == "highest",
                                    enter=lambda mode=mode: _jax().default_matmul_precision(mode))
                for mode in ("highest", "high", "default")}

    # --- data --------------------------------------------------------------------------------------------
    def _target(self) -> Any:
        if self._device is None:
            self._device = _jax().devices(self.platform)[0]
        return self._device

    def from_numpy(self, a: np.ndarray, dtype: str | None = None) -> Any:
        """`a` on the device with its own dtype, or converted on the host to `dtype` (bfloat16 via ml_dtypes,
        exact for the catalog's bfloat16-valued inputs). x64 is on, so float64 and int64 stay what they are."""
        a = np.asarray(a, order="C")  # ascontiguousarray would make a 0-d array 1-d
        if dtype is not None:
            a = a.astype(_jnp().dtype(dtype))
        return _jax().device_put(a, self._target()).block_until_ready()

    def to_numpy(self, x: Any) -> np.ndarray:
        if x.dtype == _jnp().bfloat16:
            x = x.astype(_jnp().float32)
        return np.asarray(_jax().device_get(x))

    def take_rows(self, x: Any, rows: np.ndarray) -> Any:
        return x[self.from_numpy(rows)]

    def output_fingerprint(self, x: Any) -> str | None:
        """None on the CPU (the host digest needs no copy there); `jax_fingerprint` on a device."""
        return None if self.platform == "cpu" else jax_fingerprint(x)

    # --- execution ---------------------------------------------------------------------------------------
    def force(self, out: Any) -> None:
        self._last = out

    def sync(self) -> None:
        pending, self._pending = self._pending, []
        last, self._last = self._last, None
        if last is not None:
            pending.append(last)
        if pending:
            _jax().block_until_ready(pending)

    def ready(self, out: Any) -> bool:
        return bool(out.is_ready())

    def same_buffer(self, a: Any, b: Any) -> bool:
        if a is b:
            return True
        try:
            return a.size > 0 and a.unsafe_buffer_pointer() == b.unsafe_buffer_pointer()
        except Exception:  # not a single-device array: object identity is all there is
            return False

    def compile(self, op: Callable[..., Any]) -> Callable[..., Any]:
        def case_op(*args: Any) -> Any:  # a fresh function: a fresh jit cache entry for this case
            return op(*args)

        return _jax().jit(case_op)

    def release(self) -> None:
        self._last, self._pending = None, []

    def compile_counters(self) -> dict[str, Any]:
        return {"compiler": "jax.jit", "fell_back_to_eager": False,
                "note": "recompiles once per new input shape; no recompile limit, no eager fallback"}


def jax_fingerprint(x: Any) -> str | None:
    """`backends._fingerprint`'s sums of a JAX array, in one jitted function (XLA fuses the bitcast, the index
    weights made by `lax.iota` and one variadic int64 reduction: no temporaries); only the sums come back, which
    also waits for `x`. Needs x64 (which this adapter always enables: without it int64 is silently int32, and
    the fingerprint is refused, None). Trade-off: the jit compiles once per output shape and type (a small
    reduction; JAX's persistent cache, `compile_cache_env`, keeps it for the later passes)."""
    from opbench.backends import _fingerprint as fp

    jax = _jax()
    if not jax.config.jax_enable_x64:
        return None
    jnp = _jnp()
    if fp.word_width(x.dtype.itemsize, x.dtype == jnp.bool_) is None:
        return None
    sums = jax.device_get(_jax_sums()(x))
    return fp.text("jax", x.shape, str(x.dtype), [int(s) for s in sums])


@functools.lru_cache(maxsize=1)
def _jax_sums() -> Callable[[Any], Any]:
    from opbench.backends import _fingerprint as fp

    jax, jnp = _jax(), _jnp()
    lax = jax.lax

    def sums(x: Any) -> Any:
        if x.dtype == jnp.bool_:
            w = x.astype(jnp.int8)
        else:
            width = fp.word_width(x.dtype.itemsize, False)
            w = lax.bitcast_convert_type(x, {1: jnp.int8, 2: jnp.int16, 4: jnp.int32}[width])
        w = w.reshape(-1).astype(jnp.int64)
        i = lax.iota(jnp.int64, w.size)
        h1 = (i * fp.K1) & fp.MASK
        h2 = ((i ^ (i >> fp.SHIFT)) * fp.K2) & fp.MASK
        zero = jnp.int64(0)
        # one variadic reduction: one kernel, and half the compile time of three sums (49 vs 97 ms per shape,
        # jax 0.10.2 on the 2-core CPU)
        return lax.reduce((w, w * h1, w * h2), (zero, zero, zero),
                          lambda a, b: (a[0] + b[0], a[1] + b[1], a[2] + b[2]), (0,))

    return jax.jit(sums)


@functools.lru_cache(maxsize=2)
def _flush_fill(nbytes: int) -> Callable[[Any], Any]:
    """A jitted fill of `nbytes` bytes with a scalar value (it runs on the device the value is on); made once."""
    jnp = _jnp()
    return _jax().jit(lambda v: jnp.full((nbytes,), v, dtype=jnp.uint8))


class JAXCacheFlush:
    """The `cold` mode's flush on a JAX GPU: a jitted fill of `modes.GPU_FLUSH_BYTES` with a new value each time
    (an argument, so XLA cannot fold it), waited for and dropped."""

    def __init__(self, device: Any) -> None:
        from opbench.engine.modes import GPU_FLUSH_BYTES

        jax = _jax()
        self.nbytes = GPU_FLUSH_BYTES
        self._device, self._put = device, jax.device_put
        self._fill = _flush_fill(self.nbytes)
        self._value = 0

    def __call__(self) -> None:
        self._value = (self._value + 1) % 251
        self._fill(self._put(np.uint8(self._value), self._device)).block_until_ready()

    def describe(self) -> str:
        return f"L2 flushed (writing {self.nbytes >> 20} MiB) before each call"


class JAXCPU(JAXBackend):
    name = "jax_cpu"

    def force(self, out: Any) -> None:
        self._last = out
        if not out.is_ready():  # dispatched to the thread pool: it may still run after a later call finished
            self._pending.append(out)


class JAXGPU(JAXBackend):
    name = "jax_gpu"
    device_kind = "gpu"
    platform = "gpu"

    def _unavailable_reason(self, jax: Any, exc: BaseException) -> str:
        plugin = next((p for p in ("jax_cuda13_plugin", "jax_cuda12_plugin", "jax_rocm60_plugin")
                       if importlib.util.find_spec(p) is not None), None)
        if plugin is None:
            return f"jax {jax.__version__}: jaxlib has no CUDA/GPU backend here ({_GPU_INSTALL_HINT})"
        return f"jax {jax.__version__} has {plugin} but no GPU is usable: {str(exc).splitlines()[0]}"

    def _describe(self, device: Any) -> str:
        capability = getattr(device, "compute_capability", None)
        return f"{device.device_kind}" + (f" (compute capability {capability})" if capability else "")

    def versions(self) -> dict[str, str]:
        try:
            platform = self._target().client.platform_version
        except Exception:  # the version string is informative only
            platform = "unknown"
        return {**super().versions(), "gpu_platform": str(platform)}

    def settings(self) -> dict[str, Any]:
        device = self._target()
        return {**super().settings(), "compute_capability": str(getattr(device, "compute_capability", ""))}

    def matmul_mode(self, arithmetic: str) -> str | None:
        """float32 dots are IEEE under "highest" and TF32 under "high" (= "tensorfloat32") on NVIDIA GPUs."""
        return {"float32": "highest", "TF32": "high"}.get(arithmetic)

    def free_memory(self) -> int | None:
        stats = self._target().memory_stats() or {}
        return int(stats["bytes_limit"] - stats.get("bytes_in_use", 0)) if "bytes_limit" in stats else None

    def flush_cache(self) -> Any:
        return JAXCacheFlush(self._target())

    def _memory_stats(self) -> dict[str, Any]:
        try:
            return dict(self._target().memory_stats() or {})
        except Exception:  # a client without statistics
            return {}

    def reset_peak_memory(self) -> None:
        """JAX cannot reset its peak: remember it, so `peak_memory` can tell whether this case raised it."""
        self._peak_before = self._memory_stats().get("peak_bytes_in_use")

    def peak_memory(self) -> tuple[int, str] | None:
        """`peak_bytes_in_use` when this case raised it (then it is the case's peak); otherwise the case stayed
        under an earlier case's peak, which is all JAX can say (labelled so)."""
        peak = self._memory_stats().get("peak_bytes_in_use")
        if peak is None:
            return None
        before = getattr(self, "_peak_before", None)
        if before is None or peak > before:
            return int(peak), "jax memory_stats peak_bytes_in_use"
        return int(peak), "jax memory_stats peak_bytes_in_use (an earlier case's peak: at most this)"
