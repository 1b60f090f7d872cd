"""osc-design: design optimizer and exact complexity calculator for efficient convolutions.

>>> import osc_design as od
>>> target = od.Target(64, 64, 3, input_size=56)
>>> b = od.GraphBuilder(target)
>>> spec = b.build(b.conv2d(b.input, 64, 3, padding=1), family="conv")
>>> od.cost(spec).macs, od.coverage(spec).full
(115605504, True)
"""

from __future__ import annotations

from .cost import Cost as Cost
from .cost import cost as cost
from .cost import cost_by_node as cost_by_node
from .coverage import Coverage as Coverage
from .coverage import coverage as coverage
from .coverage import dependence as dependence
from .errors import BackendUnavailableError as BackendUnavailableError
from .errors import InfeasibleDesignError as InfeasibleDesignError
from .errors import OscDesignError as OscDesignError
from .errors import SchemaError as SchemaError
from .errors import SpecError as SpecError
from .errors import UnknownBackendError as UnknownBackendError
from .ops import Add as Add
from .ops import BatchNorm as BatchNorm
from .ops import ChannelShuffle as ChannelShuffle
from .ops import Concat as Concat
from .ops import Conv2d as Conv2d
from .ops import Identity as Identity
from .ops import Input as Input
from .ops import Permute as Permute
from .ops import Shift as Shift
from .ops import Slice as Slice
from .serialize import dumps as dumps
from .serialize import layer_schema as layer_schema
from .serialize import load as load
from .serialize import loads as loads
from .serialize import save as save
from .spec import GraphBuilder as GraphBuilder
from .spec import LayerSpec as LayerSpec
from .spec import Target as Target

__version__ = "0.1.0"

# ``compare`` is bound eagerly: the submodule of the same name, once imported, would otherwise replace
# the lazy function on the package (importing a submodule sets it as the parent's attribute).
from .compare import compare as compare  # noqa: E402

_LAZY = {
    "solve": ("osc_design.solver", "solve"),
    "pareto_front": ("osc_design.solver", "pareto_front"),
    "sweep": ("osc_design.compare", "sweep"),
    "get_family": ("osc_design.registry", "get_family"),
    "family_ids": ("osc_design.registry", "family_ids"),
    "plan_network": ("osc_design.networks.plan", "plan_network"),
    "load_plan": ("osc_design.networks.plan", "load_plan"),
    "extract_convs": ("osc_design.networks.extract", "extract_convs"),
    "extract_network": ("osc_design.networks.extract", "extract_network"),
    "convert": ("osc_design.networks.convert", "convert"),
    "summary": ("osc_design.networks.summary", "summary"),
    "verify": ("osc_design.backends", "verify"),
    "export_source": ("osc_design.backends", "export_source"),
}


def __getattr__(name: str) -> object:  # PEP 562: the planner's entry points, imported on first use
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'osc_design' has no attribute {name!r}")

__all__ = [
    "Add", "BackendUnavailableError", "BatchNorm", "ChannelShuffle", "Concat", "Conv2d", "Cost", "Coverage",
    "GraphBuilder", "Identity", "InfeasibleDesignError", "Input", "LayerSpec", "OscDesignError", "Permute",
    "SchemaError", "Shift", "Slice", "SpecError", "Target", "UnknownBackendError", "__version__", "cost",
    "cost_by_node", "coverage", "dependence", "dumps", "layer_schema", "load", "loads", "save",
    "compare", "sweep", "solve", "pareto_front", "get_family", "family_ids", "plan_network", "verify", "export_source",
    "load_plan", "extract_convs", "extract_network", "convert", "summary",
]
