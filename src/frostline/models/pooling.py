"""Pooling for text encoders: which vector of a sequence the classifier head sees.

A sentence encoder is trained for one pooling, and a head on another reads features it was never trained to
produce: all-MiniLM-L6-v2 was trained for the mean over its real tokens, while Hugging Face's
``BertForSequenceClassification`` classifies BERT's pooler (a dense layer and tanh on ``[CLS]``).

==========  =====================================================================================
``auto``    a sentence-transformers folder's whole pipeline, in ``modules.json`` order: its Pooling
            (``1_Pooling/config.json``), then Dense and Normalize where listed, so the head sees what
            ``SentenceTransformer.encode`` returns; otherwise ``native``
``native``  what the model family's own ``*ForSequenceClassification`` does (BERT: its pooler)
``cls``     the first token's hidden state
``pooler``  the encoder's pooler output (BERT-style: dense + tanh on ``[CLS]``)
``mean``    mean over real tokens (the attention mask), padding excluded
``max``     element-wise max over real tokens
==========  =====================================================================================

Every mode but ``native`` builds a :class:`PooledTextClassifier`: the encoder under the attribute its family
uses (``bert``, ``roberta``, ...), so module paths, selectors and checkpoints keep their names, then the pooling,
the sentence pipeline's later steps (``sentence``: Dense, Normalize; only with ``auto``), dropout and a
``classifier`` Linear. An explicit mode (``mean`` ...) is that pooling alone.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..core.errors import FrostlineError, did_you_mean

POOLINGS = ("auto", "native", "cls", "pooler", "mean", "max")
#: sentence-transformers ``1_Pooling/config.json`` keys and the mode each means.
_ST_MODES = {"pooling_mode_mean_tokens": "mean", "pooling_mode_cls_token": "cls", "pooling_mode_max_tokens": "max"}


@dataclass(frozen=True)
class PoolingChoice:
    """The pooling a model runs with, the sentence-transformers steps after it, and why.

    Attributes:
        mode: ``native``, ``cls``, ``pooler``, ``mean`` or ``max``.
        source: Where the choice came from, in words (recorded in ``metrics.json`` and shown by ``inspect``).
        steps: The pipeline's modules after the pooling, in order: ``{"step": "normalize"}`` or ``{"step":
            "dense", "path": "2_Dense", "activation": "tanh"}``.
    """

    mode: str
    source: str
    steps: tuple[dict[str, str], ...] = ()

    @property
    def pipeline(self) -> list[str]:
        """The whole pipeline in words: ``["mean", "normalize"]``."""
        return [self.mode, *(s["step"] if s["step"] != "dense" else f"dense {s['path']} ({s['activation']})"
                             for s in self.steps)]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view (``pipeline``: what a reloaded run must rebuild)."""
        return {"mode": self.mode, "source": self.source, "steps": [dict(s) for s in self.steps],
                "pipeline": self.pipeline}


def check_pooling(mode: str) -> str:
    """Validate a ``--pooling`` value (before anything loads)."""
    if not isinstance(mode, str) or mode not in POOLINGS:
        raise FrostlineError(f"unknown pooling {mode!r}; expected one of {', '.join(POOLINGS)}"
                             f"{did_you_mean(str(mode), POOLINGS)}")
    return mode


#: sentence-transformers Dense activations (their import paths in ``2_Dense/config.json``) and the name used here;
#: a name outside this table is never imported: the pipeline stops before that module.
DENSE_ACTIVATIONS = {"torch.nn.modules.activation.Tanh": "tanh", "torch.nn.modules.linear.Identity": "identity",
                     "torch.nn.modules.activation.ReLU": "relu", "torch.nn.modules.activation.GELU": "gelu",
                     "torch.nn.modules.activation.Sigmoid": "sigmoid"}


def _later_steps(root: Path, modules: list[dict[str, Any]], after: int) -> tuple[list[dict[str, str]], str]:
    """The Normalize and Dense modules after index ``after``, and a note when one could not be followed."""
    steps: list[dict[str, str]] = []
    for entry in modules[after + 1:]:
        kind = str(entry.get("type", "")).rpartition(".")[2]
        if kind == "Normalize":
            steps.append({"step": "normalize"})
        elif kind == "Dense":
            try:
                config = json.loads((root / str(entry.get("path", "")) / "config.json").read_text(encoding="utf-8"))
            except (OSError, ValueError):
                return steps, f"; stops before Dense {entry.get('path')!r} (its config.json cannot be read)"
            activation = DENSE_ACTIVATIONS.get(str(config.get("activation_function", "")))
            if activation is None:
                return steps, (f"; stops before Dense {entry.get('path')!r} (activation "
                               f"{config.get('activation_function')!r} is not one frostline knows)")
            steps.append({"step": "dense", "path": str(entry.get("path", "")), "activation": activation})
        else:
            return steps, f"; stops before {kind or 'an unnamed module'} (not followed by frostline)"
    return steps, ""


def sentence_transformers_pooling(folder: str | Path) -> PoolingChoice | None:
    """The pipeline a sentence-transformers folder declares: ``modules.json`` -> its Pooling module's config, then
    the Dense and Normalize modules after it.

    Returns ``None`` when the folder is not a sentence-transformers model or declares a pooling with no
    equivalent here (then the family's own pooling is used; the caller says so).
    """
    root = Path(folder)
    modules_file = root / "modules.json"
    if not modules_file.is_file():
        return None
    try:
        modules = json.loads(modules_file.read_text(encoding="utf-8"))
        at = next((i for i, m in enumerate(modules) if str(m.get("type", "")).endswith(".Pooling")), None)
        if at is None:
            return None
        config_file = root / str(modules[at].get("path", "")) / "config.json"
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, ValueError, TypeError, AttributeError):
        return None
    chosen = [mode for key, mode in _ST_MODES.items() if config.get(key)]
    others = [k for k, v in config.items() if k.startswith("pooling_mode_") and v and k not in _ST_MODES]
    if isinstance(config.get("pooling_mode"), str):  # sentence-transformers 6 writes the mode by name
        named = config["pooling_mode"]
        chosen, others = ([named], []) if named in ("mean", "cls", "max") else ([], [named])
    if len(chosen) != 1 or others:
        return None
    steps, stopped = _later_steps(root, modules, at)
    where = f"{config_file.parent.name}/config.json"
    key = (f"pooling_mode {chosen[0]!r}" if isinstance(config.get("pooling_mode"), str) else
           f"pooling_mode_{chosen[0]}{'_token' if chosen[0] == 'cls' else '_tokens'}")
    then = "".join(f", then {s['step']}" + (f" ({s['path']})" if s["step"] == "dense" else "") for s in steps)
    return PoolingChoice(chosen[0], f"{where} of the sentence-transformers folder: {key}{then} (modules.json)"
                         f"{stopped}", tuple(steps))


def sentence_max_length(folder: str | Path) -> int | None:
    """A sentence-transformers folder's ``max_seq_length``: where ``encode`` truncates (``sentence_bert_config.json``;
    sentence-transformers 6 keeps it as the tokenizer's ``model_max_length``), ``None`` when it says nothing."""
    root = Path(folder)
    if not (root / "modules.json").is_file():
        return None
    for name, key in (("sentence_bert_config.json", "max_seq_length"), ("tokenizer_config.json", "model_max_length")):
        try:
            config = json.loads((root / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        value = config.get(key) if isinstance(config, dict) else None
        if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 1_000_000:
            return int(value)
    return None


class Normalize(nn.Module):
    """L2-normalise each vector (sentence-transformers' ``Normalize``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(x, p=2, dim=1)


class Dense(nn.Module):
    """A sentence-transformers ``Dense`` module: a Linear and its activation."""

    def __init__(self, in_features: int, out_features: int, bias: bool, activation: str) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, out_features, bias=bias)
        self.activation = activation
        self.act = {"tanh": nn.Tanh(), "identity": nn.Identity(), "relu": nn.ReLU(), "gelu": nn.GELU(),
                    "sigmoid": nn.Sigmoid()}[activation]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.linear(x))

    def extra_repr(self) -> str:
        return f"activation={self.activation!r}"


def build_steps(folder: str | Path | None, choice: PoolingChoice) -> nn.Sequential | None:
    """The modules of ``choice.steps`` with their weights from ``folder`` (``None`` when there are none)."""
    if not choice.steps:
        return None
    modules: list[nn.Module] = []
    for step in choice.steps:
        if step["step"] == "normalize":
            modules.append(Normalize())
            continue
        path = Path(str(folder)) / step["path"]
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
        dense = Dense(int(config["in_features"]), int(config["out_features"]), bool(config.get("bias", True)),
                      step["activation"])
        dense.load_state_dict(_dense_weights(path), strict=True)
        modules.append(dense)
    return nn.Sequential(*modules)


def _dense_weights(path: Path) -> dict[str, torch.Tensor]:
    if (path / "model.safetensors").is_file():
        from safetensors.torch import load_file

        return load_file(str(path / "model.safetensors"))
    if (path / "pytorch_model.bin").is_file():
        return torch.load(path / "pytorch_model.bin", map_location="cpu", weights_only=True)
    raise FrostlineError(f"{path}: a sentence-transformers Dense module with no weights (model.safetensors or "
                         "pytorch_model.bin)")


class Pooling(nn.Module):
    """Reduce ``(batch, tokens, hidden)`` to ``(batch, hidden)`` over the real tokens."""

    def __init__(self, mode: str) -> None:
        super().__init__()
        if mode not in ("cls", "pooler", "mean", "max"):
            raise FrostlineError(f"Pooling mode must be cls, pooler, mean or max, got {mode!r}")
        self.mode = mode

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor | None,
                pooler_output: torch.Tensor | None = None) -> torch.Tensor:
        if self.mode == "pooler":
            if pooler_output is None:
                raise FrostlineError("pooling 'pooler' needs an encoder with a pooler; use cls, mean or max")
            return pooler_output
        if self.mode == "cls":
            return hidden[:, 0]
        if mask is None:
            mask = torch.ones(hidden.shape[:2], dtype=torch.long, device=hidden.device)
        keep = mask.to(torch.bool).unsqueeze(-1)
        if self.mode == "mean":
            weights = keep.to(hidden.dtype)
            return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)
        return hidden.masked_fill(~keep, torch.finfo(hidden.dtype).min).max(dim=1).values

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}"


class PooledTextClassifier(nn.Module):
    """A Hugging Face text encoder, a pooling over its tokens, dropout, and a Linear classifier.

    The encoder is registered under its family's attribute name (``bert`` for BERT / MiniLM), so parameter names
    match ``*ForSequenceClassification`` (``bert.encoder.layer.0...``, ``classifier.weight``). ``config`` is the
    encoder's, with ``num_labels``, so it is found and replaced like any Hugging Face head.
    """

    def __init__(self, encoder: nn.Module, mode: str, num_labels: int = 2, dropout: float | None = None,
                 sentence: nn.Sequential | None = None) -> None:
        super().__init__()
        config = encoder.config
        self.config = config
        self.encoder_name = str(getattr(encoder, "base_model_prefix", "") or "encoder")
        self.add_module(self.encoder_name, encoder)
        if mode != "pooler" and isinstance(getattr(encoder, "pooler", None), nn.Module):
            encoder.pooler = None  # unused: its parameters must not count as trainable or be checkpointed
        self.pooling = Pooling(mode)
        if sentence is not None:
            self.sentence = sentence  # the sentence-transformers steps after the pooling (Dense, Normalize)
        if dropout is None:
            dropout = getattr(config, "classifier_dropout", None)
            dropout = getattr(config, "hidden_dropout_prob", 0.1) if dropout is None else dropout
        self.dropout = nn.Dropout(float(dropout))
        width = int(getattr(config, "hidden_size", 0) or getattr(config, "dim", 0) or getattr(config, "d_model", 0))
        denses = [m for m in (sentence or []) if isinstance(m, Dense)]
        width = denses[-1].linear.out_features if denses else width
        if width <= 0:
            raise FrostlineError(f"cannot tell the hidden size of {type(encoder).__name__} for a pooled head")
        config.num_labels = num_labels
        self.num_labels = num_labels
        self.classifier = nn.Linear(width, num_labels)
        std = float(getattr(config, "initializer_range", 0.02) or 0.02)
        nn.init.normal_(self.classifier.weight, std=std)
        nn.init.zeros_(self.classifier.bias)

    @property
    def encoder(self) -> nn.Module:
        """The wrapped Hugging Face encoder."""
        return getattr(self, self.encoder_name)

    def forward(self, input_ids: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None,
                labels: torch.Tensor | None = None, **kwargs: Any) -> Any:
        from transformers.modeling_outputs import SequenceClassifierOutput

        out = self.encoder(input_ids=input_ids, attention_mask=attention_mask, **kwargs)
        hidden = out[0] if isinstance(out, tuple) else out.last_hidden_state
        pooled = self.pooling(hidden, attention_mask, getattr(out, "pooler_output", None))
        if hasattr(self, "sentence"):
            pooled = self.sentence(pooled)
        logits = self.classifier(self.dropout(pooled))
        loss = nn.functional.cross_entropy(logits, labels) if labels is not None else None
        return SequenceClassifierOutput(loss=loss, logits=logits)


def describe_native(model: nn.Module) -> str:
    """The pooling a Hugging Face ``*ForSequenceClassification`` uses, in words."""
    name = type(model).__name__
    if name.startswith("Bert") or hasattr(getattr(model, "bert", None), "pooler"):
        return f"{name}'s own: BERT pooler (dense + tanh on [CLS])"
    return f"{name}'s own pooling"
