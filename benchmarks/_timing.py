"""Timing helper shared by the benchmark scripts (median wall time, CPU time kept)."""

import time

import numpy as np

CPU = []  # process CPU seconds of the last timed() calls (both cores summed)


def timed(fn, repeats=1):
    """Median wall time of ``fn()`` (its process CPU time is kept in ``CPU``)."""
    times, cpus, res = [], [], None
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        res = fn()
        times.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
    CPU.append(float(np.median(cpus)))
    return float(np.median(times)), res
