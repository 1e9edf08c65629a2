"""NumPy-backed fake backends with planted faults, for testing worker isolation and resume.

`NumpyFake` computes ReLU and Sum correctly (they verify `ok`). Each subclass misbehaves on the cases of
`fault_family` (default Sum) in one way a real framework can: a segfault, a hang, being killed by the OS (as
the out-of-memory killer does), a `MemoryError`, or just being slow. Register one with
`opbench.backends.register("fake_crash", "opbench.testing.fakes:CrashingFake")`.
"""

from __future__ import annotations

import ctypes
import os
import signal
import time
import warnings
from typing import Any, ClassVar

import numpy as np

from opbench.backends import Availability, Backend, Prepared
from opbench.catalog import Case


def _relu(backend: Backend, case: Case, args: tuple[Any, ...]) -> Prepared:
    return Prepared(lambda x: np.maximum(x, 0), args)


def _sum(backend: Backend, case: Case, args: tuple[Any, ...]) -> Prepared:
    return Prepared(lambda x: x.sum(axis=case.axis), args)


class NumpyFake(Backend):
    name = "fake_numpy"
    framework = "numpy"
    builders: ClassVar = {"ReLU": _relu, "Sum": _sum}
    fault_family: ClassVar[str] = "Sum"

    def availability(self) -> Availability:
        return Availability(True, "numpy fake for tests")

    def settings(self) -> dict[str, Any]:
        """The environment the worker set before any framework import, so tests can check it."""
        return {"XLA_PYTHON_CLIENT_PREALLOCATE": os.environ.get("XLA_PYTHON_CLIENT_PREALLOCATE"), "pid": os.getpid()}

    def from_numpy(self, a: np.ndarray, dtype: str | None = None) -> np.ndarray:
        return np.array(a, copy=True)

    def to_numpy(self, x: Any) -> np.ndarray:
        return np.asarray(x)

    def fault(self) -> None:
        """What happens on a case of `fault_family` (before it is timed)."""

    def prepare(self, case: Case, inputs: tuple[np.ndarray, ...], dtype: str | None = None) -> Prepared:
        if case.family == self.fault_family:
            self.fault()
        return super().prepare(case, inputs, dtype)


class CrashingFake(NumpyFake):
    """Segfaults: reads address 0."""

    name = "fake_crash"

    def fault(self) -> None:
        ctypes.string_at(0)


class HangingFake(NumpyFake):
    """Never returns."""

    name = "fake_hang"

    def fault(self) -> None:
        while True:
            time.sleep(1)


class KilledFake(NumpyFake):
    """Killed by SIGKILL from outside its own code, as the OS out-of-memory killer does."""

    name = "fake_killed"

    def fault(self) -> None:
        os.kill(os.getpid(), signal.SIGKILL)


class MemoryErrorFake(NumpyFake):
    name = "fake_memoryerror"

    def fault(self) -> None:
        raise MemoryError("planted allocation failure")


class BrokenSetupFake(NumpyFake):
    """Its framework fails to initialise (a broken install, a missing device)."""

    name = "fake_broken_setup"

    def setup(self) -> None:
        raise RuntimeError("planted: no device")


class WarningFake(NumpyFake):
    """Its framework warns (a UserWarning, as torch's beta `index_reduce` does) while preparing a Sum case."""

    name = "fake_warning"

    def fault(self) -> None:
        warnings.warn("planted: this op is in beta", UserWarning, stacklevel=2)


class SlowFake(NumpyFake):
    """Every case takes `OPBENCH_FAKE_DELAY_S` seconds (default 0.3) to prepare: time to interrupt a run."""

    name = "fake_slow"
    fault_family = ""

    def prepare(self, case: Case, inputs: tuple[np.ndarray, ...]) -> Prepared:
        time.sleep(float(os.environ.get("OPBENCH_FAKE_DELAY_S", "0.3")))
        return super().prepare(case, inputs)


class SlowCallFake(NumpyFake):
    """Every call of every case takes `OPBENCH_FAKE_CALL_S` seconds (default 0.5): a case whose cost a fixed
    time-out would not allow for."""

    name = "fake_slow_call"
    fault_family = ""

    def prepare(self, case: Case, inputs: tuple[np.ndarray, ...], dtype: str | None = None) -> Prepared:
        prepared = super().prepare(case, inputs, dtype)
        delay = float(os.environ.get("OPBENCH_FAKE_CALL_S", "0.5"))

        def slow(*args: Any) -> Any:
            time.sleep(delay)
            return prepared.op(*args)

        return Prepared(slow, prepared.args)


class VirtualSlowFake(NumpyFake):
    """Every call of a Sum case costs `OPBENCH_FAKE_VIRTUAL_S` seconds (default 10) of a virtual clock, without
    sleeping: in its worker process `time.perf_counter` runs that far ahead per call (set up by `setup`, only
    in a child process, never in the process that runs the tests). ReLU calls take their real time. A case
    slower than any budget, in a fast test."""

    name = "fake_virtual_slow"
    fault_family = ""
    ahead: ClassVar[list[float]] = [0.0]

    def setup(self) -> None:
        import multiprocessing

        super().setup()
        if multiprocessing.parent_process() is not None and not getattr(time.perf_counter, "virtual", False):
            real, ahead = time.perf_counter, self.ahead

            def virtual() -> float:
                return real() + ahead[0]

            virtual.virtual = True  # type: ignore[attr-defined]
            time.perf_counter = virtual

    def prepare(self, case: Case, inputs: tuple[np.ndarray, ...], dtype: str | None = None) -> Prepared:
        prepared = super().prepare(case, inputs, dtype)
        if case.family != "Sum":
            return prepared
        delay, ahead = float(os.environ.get("OPBENCH_FAKE_VIRTUAL_S", "10")), self.ahead

        def slow(*args: Any) -> Any:
            ahead[0] += delay
            return prepared.op(*args)

        return Prepared(slow, prepared.args)


class OffHostFake(NumpyFake):
    """A NumPy backend that reports its device as a GPU: the engine's paths for devices other than the host
    CPU (inputs and references made ahead by the parent, the next pass's worker imported ahead) on a machine
    without one."""

    name = "fake_gpu"
    device_kind = "gpu"
    fault_family = ""


FAKES: dict[str, str] = {cls.name: f"{__name__}:{cls.__name__}" for cls in (
    NumpyFake, CrashingFake, HangingFake, KilledFake, MemoryErrorFake, BrokenSetupFake, SlowFake, WarningFake,
    SlowCallFake, VirtualSlowFake, OffHostFake)}


def register_fakes() -> None:
    """Add every fake to the backend registry of this process."""
    from opbench.backends import register

    for name, target in FAKES.items():
        register(name, target)

