"""A trained conv's weights from a file, and exported source that loads a projection.

:func:`load_conv_weights` reads ``.npy`` (the weight alone), ``.npz`` (arrays ``weight`` and optionally
``bias``) and ``.pt`` / ``.pth`` (a tensor, or a dict such as a conv's ``state_dict`` with ``weight`` and
optionally ``bias``). Files are parsed, never evaluated: numpy without ``allow_pickle``, and
``torch.load(weights_only=True)``. :func:`project_file` projects the conv of such a file onto a design, giving
the design an output bias where the conv has a bias and the design nothing to carry it.

:func:`with_trained_weights` adds a projection's params to the source :func:`~osc_design.backends.export_source`
writes: a ``TRAINED`` constant (base64 float32 arrays, in the framework's own names and layouts) and a
``load_trained(self)`` call at the end of the class's ``__init__``, so the exported module starts from them.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..backends.program import FLAX_BATCH_NORM
from ..errors import SpecError, check_type, first_line
from ..ops import Conv2d
from ..spec import LayerSpec
from . import Projection, _bias_sinks, project

__all__ = ["load_conv_weights", "project_file", "with_trained_weights", "WEIGHT_SUFFIXES"]

WEIGHT_SUFFIXES = (".npy", ".npz", ".pt", ".pth")
"""File suffixes :func:`load_conv_weights` reads."""


def _from_mapping(found: Mapping[str, Any], path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    keys = [k for k in found if k == "weight" or k.endswith(".weight")]
    if len(keys) != 1:
        raise SpecError(f"{str(path)!r} must hold exactly one `weight` array, found keys {sorted(found)}")
    key = keys[0]
    bias_key = key[: -len("weight")] + "bias"
    bias = found.get(bias_key)
    return _array(found[key]), None if bias is None else _array(bias)


def _array(value: Any) -> np.ndarray:
    """The stored array as it is (a complex or non-numeric one is refused by :func:`~osc_design.weights.project`,
    not cast); a torch tensor in float64."""
    if hasattr(value, "detach"):  # a torch tensor
        value = value.detach().cpu()
        value = (value.resolve_conj() if value.is_complex() else value.double()).numpy()
    return np.asarray(value)


def load_conv_weights(path: str | Path) -> tuple[np.ndarray, np.ndarray | None]:
    """``(weight, bias or None)`` of a trained conv stored at ``path`` (see the module docstring)."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in WEIGHT_SUFFIXES:
        raise SpecError(f"{str(p)!r}: weights must be a {', '.join(WEIGHT_SUFFIXES)} file")
    if not p.is_file():
        raise SpecError(f"{str(p)!r} is not a readable file")
    try:
        if suffix == ".npy":
            return _array(np.load(p, allow_pickle=False)), None
        if suffix == ".npz":
            with np.load(p, allow_pickle=False) as found:
                return _from_mapping({k: found[k] for k in found.files}, p)
        import pickle
        import warnings

        import torch

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's notes on old pickle protocols: the error says it all
            found = torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise SpecError(f"{str(p)!r} holds no plain tensors (pickled objects, e.g. a whole module, are not "
                        "loaded: save its state_dict or the weight tensor)") from None
    except (ValueError, OSError, RuntimeError, EOFError) as e:
        raise SpecError(f"{str(p)!r} could not be read as weights: {first_line(e)}") from None
    if isinstance(found, Mapping):
        return _from_mapping(found, p)
    return _array(found), None


def project_file(spec: LayerSpec, path: str | Path) -> Projection:
    """The projection (:func:`~osc_design.weights.project`) of the trained conv stored at ``path`` onto ``spec``.

    A conv with a bias, for a design with no node that can carry one, is projected onto
    :func:`~osc_design.transform.with_output_bias` of ``spec`` (as a network plan gives a replaced conv's bias to
    its design): the projection's ``spec`` is then that design, whose module with the projection's params
    reproduces the bias. A :class:`~osc_design.SpecError` where the design does not end in a conv.
    """
    check_type(spec, LayerSpec, "spec")
    weight, bias = load_conv_weights(path)
    if bias is not None and not _bias_sinks(spec):
        from ..transform import with_output_bias

        try:
            spec = with_output_bias(spec)
        except SpecError as e:
            raise SpecError(f"{str(path)!r} holds a bias, which the design cannot carry: {e} (save the weight "
                            "alone to project it without the bias)") from None
    return project(spec, weight, bias)


def _encode(value: np.ndarray) -> tuple[tuple[int, ...], str]:
    data = np.ascontiguousarray(value, dtype="<f4")
    return tuple(data.shape), base64.b64encode(data.tobytes()).decode("ascii")



_LOADERS = {
    "torch": (
        "def load_trained(module: nn.Module) -> None:",
        '    """Copy ``TRAINED`` (the projection of a trained conv, float32) into the module\'s parameters."""',
        "    import base64",
        "",
        "    for name, arrays in TRAINED.items():",
        "        for key, (shape, data) in arrays.items():",
        "            value = torch.frombuffer(bytearray(base64.b64decode(data)), dtype=torch.float32).reshape(shape)",
        "            with torch.no_grad():",
        "                getattr(getattr(module, name), key).copy_(value)",
    ),
    "jax": (
        "def load_trained(module: nnx.Module) -> None:",
        '    """Copy ``TRAINED`` (the projection of a trained conv, float32) into the module\'s variables."""',
        "    import base64",
        "",
        "    for name, arrays in TRAINED.items():",
        "        for key, (shape, data) in arrays.items():",
        "            var = getattr(getattr(module, name), key)",
        "            value = np.frombuffer(base64.b64decode(data), dtype='<f4').reshape(shape)",
        "            var[...] = jnp.asarray(value, dtype=var.dtype)",
    ),
}


def _trained(spec: LayerSpec, params: Mapping[str, Mapping[str, np.ndarray]], to: str) -> dict[str, Any]:
    """``{python name: {attribute: (shape, base64)}}`` in the framework's names and layouts."""
    from ..backends.program import python_names

    names = python_names(spec)
    out: dict[str, Any] = {}
    for nid, arrays in params.items():
        is_conv = isinstance(spec.node_map[nid], Conv2d)
        entry = {}
        for key, value in arrays.items():
            value = np.asarray(value)
            if to == "jax" and is_conv and key == "weight":
                entry["kernel"] = _encode(value.transpose(2, 3, 1, 0))
            elif to == "jax" and not is_conv:
                entry[FLAX_BATCH_NORM[key]] = _encode(value)
            else:
                entry[key] = _encode(value)
        out[names[nid]] = entry
    return out


def with_trained_weights(source: str, spec: LayerSpec, params: Mapping[str, Mapping[str, np.ndarray]],
                         to: str) -> str:
    """``source`` (exported for ``spec``, framework ``to``) whose module loads ``params`` when constructed."""
    from ..backends.export import backend_source
    from ..backends.program import program

    call = backend_source(to).text["call"].format(x=program(spec).input)
    anchor = "\n\n" + call + "\n"
    at = source.rfind(anchor)  # the design's class comes last, after the helpers
    if at < 0:  # pragma: no cover - the exporter's layout changed
        raise SpecError("exported source has no forward method to load the weights before")
    lines = ["TRAINED = {"]
    for name, arrays in _trained(spec, params, to).items():
        lines.append(f"    {name!r}: {{")
        lines += [f"        {key!r}: ({shape!r}, {data!r})," for key, (shape, data) in arrays.items()]
        lines.append("    },")
    lines.append("}")
    head, tail = source[:at], source[at + len(anchor):]
    cut = head.rindex("\nclass ")
    text = (head[:cut] + "\n" + "\n".join(lines) + "\n\n\n" + "\n".join(_LOADERS[to]) + "\n\n" + head[cut:]
            + "\n        load_trained(self)" + anchor + tail)
    compile(text, "<exported>", "exec")
    return text
