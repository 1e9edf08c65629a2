"""NVIDIA GPU readings through NVML (`pynvml`, from the `nvidia-ml-py` package): clocks, power, temperature,
throttle reasons and the total energy counter of the GPU a worker measures on.

`pynvml` is imported only when it is installed, and only in the process that measures; without it (or without
an NVIDIA driver) `open_gpu` returns None and results simply carry no GPU readings. Every reading is optional:
a field NVML refuses on this GPU (`NVMLError_NotSupported`) is left out, never guessed.

Which GPU: the first entry of `CUDA_VISIBLE_DEVICES` (an index or a `GPU-...` UUID), else index 0, which is
the device torch, MLX, JAX and CuPy take by default. NVML numbers GPUs as the driver does, not as
`CUDA_VISIBLE_DEVICES` renumbers them, so the entry is resolved, not assumed to be 0.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from typing import Any

# Throttle ("clocks event") reasons that slow a kernel down, by NVML's bit. GPU idle, application clock
# settings, sync boost and display clock settings are left out: they are not a slowdown of a running kernel.
THROTTLE_REASONS: dict[int, str] = {
    0x0000000000000004: "sw_power_cap",
    0x0000000000000008: "hw_slowdown",
    0x0000000000000020: "sw_thermal",
    0x0000000000000040: "hw_thermal",
    0x0000000000000080: "hw_power_brake",
}


def throttle_names(mask: int) -> list[str]:
    """The slowing reasons set in an NVML throttle-reason bit mask."""
    return [name for bit, name in THROTTLE_REASONS.items() if mask & bit]


class GPU:
    """One GPU's NVML handle and the readings taken from it."""

    def __init__(self, nvml: Any, handle: Any, index: str) -> None:
        self._nvml, self._handle, self.index = nvml, handle, index

    def _call(self, name: str, *args: Any) -> Any:
        fn = getattr(self._nvml, name, None)
        if fn is None:
            return None
        try:
            return fn(self._handle, *args)
        except Exception:  # NVMLError_NotSupported, NoPermission, ...: the field is left out
            return None

    def read(self) -> dict[str, float]:
        """One sample: SM and memory clocks (MHz), power (W), temperature (°C), throttle bit mask."""
        nvml = self._nvml
        out: dict[str, float] = {}
        sm = self._call("nvmlDeviceGetClockInfo", getattr(nvml, "NVML_CLOCK_SM", 1))
        mem = self._call("nvmlDeviceGetClockInfo", getattr(nvml, "NVML_CLOCK_MEM", 2))
        power = self._call("nvmlDeviceGetPowerUsage")
        temp = self._call("nvmlDeviceGetTemperature", getattr(nvml, "NVML_TEMPERATURE_GPU", 0))
        reasons = self._call("nvmlDeviceGetCurrentClocksEventReasons")
        if reasons is None:
            reasons = self._call("nvmlDeviceGetCurrentClocksThrottleReasons")
        for key, value, scale in (("sm_mhz", sm, 1), ("mem_mhz", mem, 1), ("power_w", power, 1e-3),
                                  ("temp_c", temp, 1), ("reasons", reasons, 1)):
            if isinstance(value, (int, float)):
                out[key] = value * scale
        return out

    def energy_mj(self) -> int | None:
        """The total energy counter (mJ since the driver loaded), or None where the GPU has none (pre-Volta)."""
        value = self._call("nvmlDeviceGetTotalEnergyConsumption")
        return int(value) if isinstance(value, (int, float)) else None

    def max_sm_mhz(self) -> float | None:
        value = self._call("nvmlDeviceGetMaxClockInfo", getattr(self._nvml, "NVML_CLOCK_SM", 1))
        return float(value) if isinstance(value, (int, float)) else None


def _visible_entry() -> str:
    entry = os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")[0].strip()
    return entry or "0"


def open_gpu() -> GPU | None:
    """The measured GPU's NVML handle, or None without pynvml, a driver, or that GPU."""
    if "pynvml" not in sys.modules and importlib.util.find_spec("pynvml") is None:
        return None
    try:
        import pynvml

        pynvml.nvmlInit()
        entry = _visible_entry()
        if entry.isdigit():
            handle = pynvml.nvmlDeviceGetHandleByIndex(int(entry))
        else:
            handle = pynvml.nvmlDeviceGetHandleByUUID(entry)
    except Exception:  # no driver, no such GPU, a MIG slice NVML cannot address: no readings
        return None
    return GPU(pynvml, handle, entry)
