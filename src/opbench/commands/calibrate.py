"""`opbench calibrate`: measure each device's copy bandwidth and matmul peaks, and store them for this machine."""

from __future__ import annotations

import argparse
import json

import opbench.defaults as defaults
import opbench.machine as machine
from opbench.backends import parse_backends
from opbench.commands import add_format, console, options
from opbench.commands.run import available_backends, unavailable_error
from opbench.errors import UsageError
from opbench.report.tables import Table, to_markdown, to_rich
from opbench.results.files import atomic_write
from opbench.studies.calibrate import (
    MATMUL_DTYPES,
    CalibrationSettings,
    calibrate_backend,
    calibration_path,
    load_calibration,
    save_calibration,
)

MAX_COPY_MIB = 1 << 20  # 1 TiB
MAX_MATMUL_N = 1 << 17  # n x n float32 matrices of 64 GiB each


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("calibrate", help="measure each device's memory bandwidth and matmul peak (stored per machine)")
    p.add_argument("--backends", type=options.backend_list,
                   help="comma-separated backends (default: every available one but the *_compile twins)")
    p.add_argument("--budget", type=options.seconds, default=defaults.CALIBRATION_BUDGET_S,
                   help=f"timing budget per measurement in seconds (default {defaults.CALIBRATION_BUDGET_S:g})")
    p.add_argument("--copy-mib", type=options.bounded_int(1, MAX_COPY_MIB),
                   help="copy size in MiB (default 1024 on a GPU, 256 on a CPU)")
    p.add_argument("--max-n", type=options.bounded_int(16, MAX_MATMUL_N), default=16384,
                   help="largest matmul size tried (default 16384)")
    p.add_argument("--target-ms", type=options.finite_float(0.0, 1000 * options.MAX_SECONDS), default=50.0,
                   help="grow the matmul until one call takes this long (default 50 ms)")
    p.add_argument("--out", type=options.output_file, help="also write this machine's calibration file here")
    add_format(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    names, availability = available_backends(parse_backends(args.backends))
    if not args.backends:
        names = [n for n in names if not n.endswith("_compile")]  # same device and kernels as the eager twin
    unavailable = [n for n in names if not availability[n]["available"]]
    if unavailable:
        raise unavailable_error(unavailable, availability)
    settings = CalibrationSettings(copy_bytes=args.copy_mib << 20 if args.copy_mib else None,
                                   target_call_s=args.target_ms / 1e3, max_n=args.max_n, min_n=min(512, args.max_n),
                                   budget_s=args.budget)
    info = machine.collect()
    err = console(stderr=True)
    calibration = None
    failed = []
    for name in names:  # each backend is stored as soon as it is measured: a timeout loses only the one in flight
        device = calibrate_backend(name, settings, log=lambda s: err.print(s, markup=False))
        if device.copy is None and device.read is None and not device.matmul:  # nothing to store: keep the old
            why = "; ".join(f"{k}: {v}" for k, v in device.unsupported.items())
            err.print(f"{name}: nothing measured ({why})", markup=False)
            failed.append(name)
            continue
        calibration = load_calibration(info, save_calibration(info, [device]))
        assert calibration is not None
        if args.out:
            atomic_write(args.out, json.dumps(calibration.to_dict(), indent=1, default=str) + "\n")
    if calibration is None:
        if failed:
            return 1
        raise UsageError("no backend to calibrate")
    table = calibration_table(calibration.devices.values())
    if args.format == "md":
        print(to_markdown(table, legend=False), end="")
    else:
        console().print(to_rich(table))
    err.print(f"stored in {calibration_path(info)}" + (f" and {args.out}" if args.out else ""), markup=False)
    return 1 if failed else 0


def calibration_table(devices) -> Table:
    rows, notes = [], []
    for d in devices:
        peaks = [f"{d.matmul[k].best_rate:,.0f}" if k in d.matmul else "–" for k in MATMUL_DTYPES]
        rows.append([d.backend, f"{d.copy.best_rate:,.1f}" if d.copy else "–",
                     f"{d.read.best_rate:,.1f}" if d.read else "–", *peaks])
        notes += [f"{d.backend} {k}: {c.how}; fastest of {c.samples} samples (median rate {c.rate:,.0f})"
                  for k, c in d.matmul.items()]
        notes += [f"{d.backend} {k}: not measured: {why}" for k, why in d.unsupported.items()]
    headers = ["Backend", "copy GB/s", "read GB/s", *(f"{k} GFLOP/s" for k in MATMUL_DTYPES)]
    return Table("Calibrated ceilings (fastest sample)", headers, rows, notes)
