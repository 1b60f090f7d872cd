"""Latency model per backend and device: fewer MACs do not mean faster, so measure.

Measured on a 2-core CPU (batch 8, ``256 -> 256``, ``K = 7`` at ``14 x 14``): a two-stage grouped
design with 55x fewer MACs than the conv runs about 4x faster in PyTorch but slower in JAX/XLA, while
depthwise-separable runs about 20x faster in PyTorch. This package predicts the latency of a design
on a given backend, device, dtype, batch and thread count from microbenchmarks of its primitive ops,
and picks designs by it.

=======================  ====================================================================
:func:`calibrate`        time a standard grid of primitive ops into the cache (resumable)
:class:`LatencyModel`    one context's op table; measures unseen ops on demand or interpolates
:func:`predict`          predicted end-to-end latency of a spec, with provenance of every op
:func:`measure`          measured end-to-end latency of a spec's module (median and spread)
:func:`measure_many`     several designs measured round-robin, to compare them with each other
:func:`solve_latency`    the fully covering design with the lowest predicted latency
:func:`solve_with_budget`  minimise params, MACs or latency within budgets on the others
=======================  ====================================================================

Timings are cached in a versioned JSON file (:mod:`osc_design.latency.cache`), keyed by backend and
its version, device, dtype, batch and thread count. Importing this package imports neither PyTorch
nor JAX; they are imported when something is timed.

>>> from osc_design import Target
>>> from osc_design.latency import solve_latency
>>> sol = solve_latency(Target(256, 256, 7, input_size=14), backend="torch")  # doctest: +SKIP
>>> sol.name, sol.speedup  # doctest: +SKIP
('depthwise-separable', 19.8)
"""

from __future__ import annotations

from .cache import CACHE_ENV, CACHE_VERSION, CacheWarning, LatencyCache, TableKey, default_cache_dir
from .model import (
    CalibrationReport,
    LatencyModel,
    Measurement,
    MeasureFn,
    OpLatency,
    Prediction,
    calibrate,
    call_spec,
    latency_model,
    measure,
    measure_many,
    predict,
)
from .objective import MINIMISE, Candidate, LatencySolution, latency_candidates, solve_latency, solve_with_budget
from .opkeys import CALL_KEY, OP_KINDS, OpKey, conv_key, op_keys, standard_grid
from .timing import Context, Timing, TimingPolicy

__all__ = [
    "CACHE_ENV",
    "CACHE_VERSION",
    "CALL_KEY",
    "CacheWarning",
    "CalibrationReport",
    "Candidate",
    "Context",
    "LatencyCache",
    "LatencyModel",
    "LatencySolution",
    "MINIMISE",
    "Measurement",
    "MeasureFn",
    "OP_KINDS",
    "OpKey",
    "OpLatency",
    "Prediction",
    "TableKey",
    "Timing",
    "TimingPolicy",
    "calibrate",
    "call_spec",
    "conv_key",
    "default_cache_dir",
    "latency_candidates",
    "latency_model",
    "measure",
    "measure_many",
    "op_keys",
    "predict",
    "solve_latency",
    "solve_with_budget",
    "standard_grid",
]
