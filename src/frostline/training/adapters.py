"""Adapters from Hugging Face PEFT (LoRA, (IA)3) as one more kind of trainable part: the base stays frozen.

:class:`AdapterSpec` says what is adapted, by full module path, so that a run folder rebuilds exactly the adapters
it was trained with (``state.json`` ``adapters``: plain values, never code). :func:`attach` injects them into the
model in place through PEFT's own tuner (``LoraModel`` / ``IA3Model``); :meth:`Attached.detach` takes them out
again (the model is the base model once more) and :meth:`Attached.merge` folds them into the base weights
(PEFT's ``merge_and_unload``), which is what an export holds.

Injected layers keep the base tensors under ``<module>.base_layer.``; :func:`base_name` maps a name back.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..core.errors import FrostlineError, did_you_mean

ADAPTER_KINDS = ("lora", "ia3")
#: substrings of the parameter names PEFT gives adapter tensors
ADAPTER_MARKERS = (".lora_A.", ".lora_B.", ".ia3_l.")
#: attention projections by the names model families give them (the LoRA paper adapts W_q and W_v)
QUERY_NAMES = ("query", "q", "q_proj", "q_lin", "wq", "query_proj")
KEY_NAMES = ("key", "k", "k_proj", "k_lin", "wk", "key_proj")
VALUE_NAMES = ("value", "v", "v_proj", "v_lin", "wv", "value_proj")
FUSED_NAMES = ("qkv", "c_attn", "query_key_value", "Wqkv", "in_proj")
#: the second (output) layer of a transformer block's feed-forward network, for (IA)3
FEEDFORWARD_SUFFIXES = ("output.dense", "fc2", "down_proj", "lin2", "dense_4h_to_h", "wo", "mlp.c_proj")


def adapter_param(name: str) -> bool:
    """Whether ``name`` is a tensor PEFT added (``lora_A``, ``lora_B``, ``ia3_l``)."""
    return any(m in name for m in ADAPTER_MARKERS)


def base_name(name: str) -> str:
    """The base model's name of a tensor in an adapted model (``x.query.base_layer.weight`` -> ``x.query.weight``)."""
    return name.replace(".base_layer.", ".")


_CONV_ARGS = ["self", "in_channels", "out_channels", "kernel_size", "stride", "padding"]


def rebuildable(module: nn.Module) -> bool:
    """Whether LoRA can build its ``lora_A`` as ``type(module)(in, r, kernel, stride, padding)``, as PEFT does: a
    plain ``nn.Conv2d``, or a subclass that takes the same leading arguments (EfficientNet-Lite's
    ``Conv2dStaticSamePadding`` takes others: PEFT would pass its padding as the dilation)."""
    import inspect

    if type(module) in (nn.Conv1d, nn.Conv2d):
        return True
    try:
        names = list(inspect.signature(type(module).__init__).parameters)[:6]
    except (TypeError, ValueError):
        return False
    return names == _CONV_ARGS


def _supported(module: nn.Module, kind: str = "ia3") -> bool:
    """Layers PEFT adapts: Linear, Conv1d/2d without groups (LoRA: only those it can rebuild, :func:`rebuildable`),
    transformers' GPT-2 ``Conv1D``."""
    if isinstance(module, nn.Linear):
        return True
    if isinstance(module, nn.Conv1d | nn.Conv2d):
        return module.groups == 1 and (kind != "lora" or rebuildable(module))
    return type(module).__name__ == "Conv1D" and hasattr(module, "nf")


def unrebuildable(model: nn.Module, within: list[str]) -> list[str]:
    """Ungrouped convolutions inside ``within`` that (IA)3 adapts but LoRA cannot rebuild, by class name."""
    return sorted({type(m).__name__ for n, m in model.named_modules()
                   if _supported(m) and not _supported(m, "lora") and _inside(n, within)})


def _inside(path: str, blocks: list[str]) -> bool:
    """``path`` is one of ``blocks`` or below one (a block may be a single layer: a plain Sequential's)."""
    return any(path == b or path.startswith(b + ".") for b in blocks)


def _leaf(path: str) -> str:
    return path.rsplit(".", 1)[-1]


def _matches(path: str, name: str) -> bool:
    """PEFT's rule: a target name matches a module path equal to it or ending in ``.name``."""
    return path == name or path.endswith("." + name)


@dataclass(frozen=True)
class AdapterSpec:
    """What PEFT injects: the kind, the exact modules and the kind's settings.

    Attributes:
        kind: ``"lora"`` or ``"ia3"``.
        targets: Full module paths of the adapted layers.
        r: LoRA rank.
        alpha: LoRA scaling numerator (the update is scaled by ``alpha / r``).
        dropout: Dropout on the LoRA branch's input.
        feedforward: (IA)3: the targets whose *input* is scaled (feed-forward layers); the others scale their output.
    """

    kind: str
    targets: tuple[str, ...]
    r: int = 8
    alpha: float = 16.0
    dropout: float = 0.0
    feedforward: tuple[str, ...] = field(default=())

    def peft_config(self) -> Any:
        """The PEFT configuration, with the exact module paths as its targets."""
        if self.kind == "lora":
            from peft import LoraConfig

            return LoraConfig(r=self.r, lora_alpha=self.alpha, lora_dropout=self.dropout, bias="none",
                              target_modules=list(self.targets))
        from peft import IA3Config

        return IA3Config(target_modules=list(self.targets), feedforward_modules=list(self.feedforward))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view (``state.json`` ``adapters``)."""
        import peft

        return {"kind": self.kind, "targets": list(self.targets), "r": self.r, "alpha": self.alpha,
                "dropout": self.dropout, "feedforward": list(self.feedforward), "peft": peft.__version__}

    @classmethod
    def from_dict(cls, d: Any, where: str) -> AdapterSpec:
        """Read a recorded spec back, every value checked (a run folder holds data, never code)."""
        try:
            kind, targets = d["kind"], d["targets"]
            r, alpha, dropout, ff = int(d["r"]), float(d["alpha"]), float(d["dropout"]), d.get("feedforward") or []
            ok = kind in ADAPTER_KINDS and r >= 1 and 0 <= dropout < 1 and isinstance(targets, list) and all(
                isinstance(t, str) and t for t in [*targets, *ff]) and set(ff) <= set(targets) and targets
        except (KeyError, TypeError, ValueError):
            ok = False
        if not ok:
            raise FrostlineError(f"{where} is damaged: its 'adapters' record is not a valid adapter spec")
        return cls(kind, tuple(targets), r, alpha, dropout, tuple(ff))


def adaptable(model: nn.Module, within: list[str], kind: str = "ia3") -> list[str]:
    """Paths of the layers PEFT can adapt (with ``kind``) inside the modules ``within`` (block paths), in order."""
    return [n for n, m in model.named_modules()
            if _supported(m, kind) and _inside(n, within)]


def _by_names(paths: list[str], names: tuple[str, ...]) -> list[str]:
    return [p for p in paths if any(_matches(p, n) for n in names)]


def _model_type(model: nn.Module) -> str | None:
    for m in model.modules():
        kind = getattr(getattr(m, "config", None), "model_type", None)
        if isinstance(kind, str):
            return kind
    return None


def default_targets(model: nn.Module, kind: str, blocks: list[str]) -> tuple[list[str], list[str]]:
    """The layers adapted when no ``targets=`` is given, and (IA)3's feed-forward ones.

    LoRA: the attention query and value projections (the LoRA paper's W_q, W_v; PEFT's table for the model's
    family where it has one); a fused query-key-value projection where there are no separate ones; in a model
    without attention (a CNN), every Linear and ungrouped convolution of the blocks. (IA)3: PEFT's table, else
    keys, values and the feed-forward output layer (Liu et al. 2022).
    """
    from peft.utils.constants import (
        TRANSFORMERS_MODELS_TO_IA3_FEEDFORWARD_MODULES_MAPPING,
        TRANSFORMERS_MODELS_TO_IA3_TARGET_MODULES_MAPPING,
        TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING,
    )

    paths = adaptable(model, blocks, kind)
    family = _model_type(model)
    table = (TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING if kind == "lora"
             else TRANSFORMERS_MODELS_TO_IA3_TARGET_MODULES_MAPPING)
    if family in table:
        chosen = _by_names(paths, tuple(table[family]))
        ff = _by_names(chosen, tuple(TRANSFORMERS_MODELS_TO_IA3_FEEDFORWARD_MODULES_MAPPING.get(family, ())))
        if chosen:
            return chosen, ff if kind == "ia3" else []
    leaves = {_leaf(p) for p in paths}
    if kind == "lora":
        names = (QUERY_NAMES + VALUE_NAMES) if leaves & set(QUERY_NAMES) and leaves & set(VALUE_NAMES) else \
            FUSED_NAMES if leaves & set(FUSED_NAMES) else ()
        return (_by_names(paths, names) if names else paths), []
    attention = KEY_NAMES + VALUE_NAMES if leaves & set(KEY_NAMES) else FUSED_NAMES
    ff = [p for p in _by_names(paths, FEEDFORWARD_SUFFIXES) if "attention" not in p and "attn" not in p]
    chosen = _by_names(paths, attention) + ff
    if not chosen:
        return paths, []
    return [p for p in paths if p in set(chosen)], ff


def named_targets(model: nn.Module, names: list[str], blocks: list[str], spec: str, kind: str = "lora") -> list[str]:
    """``targets=NAMES``: the adaptable layers of the chosen blocks whose path is or ends in one of ``names``."""
    paths = adaptable(model, blocks, kind)
    everything = {n: type(m).__name__ for n, m in model.named_modules() if _inside(n, blocks)}
    out = []
    for name in names:
        found = _by_names(paths, (name,))
        if not found:
            other = [p for p in everything if _matches(p, name)]
            leaves = sorted({_leaf(p) for p in paths})
            if other and kind == "lora" and _supported(model.get_submodule(other[0])):
                raise FrostlineError(f"strategy {spec!r}: targets {name!r} names {everything[other[0]]} layers "
                                     f"({other[0]}), which PEFT's LoRA cannot rebuild (it makes lora_A with "
                                     "nn.Conv2d's own arguments, and this class takes others); ia3 adapts them")
            if other:
                raise FrostlineError(f"strategy {spec!r}: targets {name!r} names {everything[other[0]]} layers "
                                     f"({other[0]}), which PEFT does not adapt; it adapts Linear and ungrouped "
                                     f"convolution layers, here named {', '.join(leaves)}")
            raise FrostlineError(f"strategy {spec!r}: targets {name!r} matches no layer in the chosen blocks; the "
                                 f"layers PEFT can adapt there are named {', '.join(leaves)}"
                                 f"{did_you_mean(name, leaves)}")
        out.extend(found)
    return [p for p in paths if p in set(out)]


@dataclass
class Attached:
    """Adapters injected into a model; ``tuner`` is PEFT's (it holds the model, it is not part of it)."""

    spec: AdapterSpec
    tuner: Any
    model: nn.Module

    def detach(self) -> None:
        """Take the adapters out: the model holds its base layers again, unchanged."""
        self.tuner.unload()
        _forget(self.model)

    def merge(self) -> None:
        """Fold the adapters into the base weights (PEFT's ``merge_and_unload``): the model is plain again."""
        self.tuner.merge_and_unload()
        _forget(self.model)


def _forget(model: nn.Module) -> None:
    if "peft_config" in vars(model):
        del model.peft_config


def attach(model: nn.Module, spec: AdapterSpec, seed: int) -> Attached:
    """Inject ``spec``'s adapters into ``model`` in place (seeded: LoRA's A matrices are random)."""
    if getattr(model, "peft_config", None):
        raise FrostlineError("this model already carries PEFT adapters; frostline adds its own to a plain model: "
                             "merge yours (merge_and_unload) or bring the base model")
    from peft import IA3Model, LoraModel

    state = torch.get_rng_state()
    torch.manual_seed(seed)
    trainable = {n: p.requires_grad for n, p in model.named_parameters()}
    try:
        tuner = (LoraModel if spec.kind == "lora" else IA3Model)(model, spec.peft_config(), "default")
    finally:
        torch.set_rng_state(state)
    for n, p in model.named_parameters():  # PEFT freezes all but its adapters; frostline's plans decide
        was = trainable.get(base_name(n))
        if was is not None:
            p.requires_grad_(was)
    return Attached(spec, tuner, model)


def initial_state(model: nn.Module, base: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``base`` (the starting state of the plain model) renamed for the adapted ``model``, plus the adapters'
    starting values."""
    out = {}
    for name, t in model.state_dict().items():
        plain = base.get(base_name(name))
        out[name] = plain if plain is not None and not adapter_param(name) else t.detach().clone()
    return out


_SAFE = re.compile(r"^[A-Za-z0-9_.]+$")


def check_paths(model: nn.Module, spec: AdapterSpec, where: str) -> None:
    """Every recorded target is an adaptable layer of ``model`` (a run folder names modules, never code)."""
    modules = dict(model.named_modules())
    bad = [t for t in spec.targets
           if not _SAFE.match(t) or t not in modules or not _supported(modules[t], spec.kind)]
    if bad:
        raise FrostlineError(f"{where} adapts {bad[0]!r}, which is not an adaptable layer of this model; it is not "
                             "the model the run was trained on")
