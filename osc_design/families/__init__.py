"""The operator families: spec builders, exact sympy closed forms, registrations.

Importing this package registers (in :mod:`osc_design.registry`, the one registry), in this order, the
families ``conv``, ``grouped`` (:mod:`.dense`), ``depthwise-separable``, ``spatial-separable``,
``depthwise-spatial-separable`` (:mod:`.separable`), ``bsconv-u``, ``bsconv-s`` (:mod:`.bsconv`),
``compconv`` (:mod:`.compconv`), ``slak``, ``shiftwise`` (:mod:`.large_kernel`), ``osc-2`` and ``osc``
(:mod:`.osc`, built by the solver). Each family has a builder ``build(target, **options) -> LayerSpec``
that replaces the target convolution, and closed forms ``params_expr`` / ``macs_expr`` (sympy, in the
symbols below) that, evaluated with :func:`evaluate`, equal the foundation cost model's exact counts of
the built graph.

Conventions shared by all families
----------------------------------
* No conv has a bias (params are weights); batch norms appear only where an option asks for them.
* Every design has the target's output size and window alignment: target output ``q`` reads input rows
  ``q*s - p + [0, K)``. A stage with the full kernel side ``K`` along an axis uses the target's padding and
  stride there; a stage with a smaller side ``k`` is *centred* in the window, which needs ``K - k`` even
  and ``p >= (K - k) / 2`` (otherwise a :class:`~osc_design.SpecError` says why: no op can crop).
* Symbols (sympy, created on first use, never at import): ``C_in, C_out`` channels; ``K_h, K_w`` kernel;
  ``s_h, s_w`` stride; ``p_h, p_w`` padding; ``H, W`` input size; ``H_out, W_out`` output size. They
  are attributes of this package (``osc_design.families.C_in``) and :func:`symbols` returns them all.

The reference for every formula is ``papers.md`` (sections 0, 2, 3, 4); each builder's docstring says
what is verified there and what is reconstructed (tags [V-code], [V-2nd], [D], [U]).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..registry import Family, registered
from ._common import SYMBOL_NAMES, _symbol_table, check_options, count_macs, count_params, evaluate, symbols
from .dense import build_conv, build_grouped
from .separable import build_depthwise_separable, build_depthwise_spatial_separable, build_spatial_separable
from .bsconv import bsconv_mid_channels, build_bsconv_s, build_bsconv_u
from .compconv import build_compconv, compconv_depth, compconv_eq8, compconv_prim
from .large_kernel import build_shiftwise, build_slak, depthwise_part, shiftwise_kernels, shiftwise_slak_ratio
from .osc import OSC_OPTIONS, chain_macs_expr, chain_params_expr

__all__ = [
    "SYMBOL_NAMES",
    "FAMILIES",
    "OSC_OPTIONS",
    "symbols",
    "evaluate",
    "check_options",
    "count_params",
    "count_macs",
    "chain_params_expr",
    "chain_macs_expr",
    "compconv_depth",
    "compconv_prim",
    "compconv_eq8",
    "bsconv_mid_channels",
    "shiftwise_kernels",
    "shiftwise_slak_ratio",
    "depthwise_part",
    "build_conv",
    "build_grouped",
    "build_depthwise_separable",
    "build_spatial_separable",
    "build_depthwise_spatial_separable",
    "build_bsconv_u",
    "build_bsconv_s",
    "build_compconv",
    "build_slak",
    "build_shiftwise",
]

FAMILIES: Mapping[str, Family] = registered()
"""Every registered family by id, in registration order: a read-only view of :mod:`osc_design.registry`."""


def __getattr__(name: str) -> Any:  # PEP 562: ``families.C_in`` without importing sympy at import time
    if name in SYMBOL_NAMES:
        return _symbol_table()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
