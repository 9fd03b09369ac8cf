"""The automatic precision: bf16-mixed where the CPU runs it fast (detected), checked on the run's validation split
before training, with a fall-back to fp32; the cache in bf16 under autocast."""

from __future__ import annotations

import numpy as np
import pytest

import frostline as fl
from frostline.runs import precision as prec
from frostline.training import fabric


def test_precision_reason_says_what_was_chosen_and_why(monkeypatch):
    assert fabric.precision_reason("cpu", "32-true") == ("32-true", "set by --precision")
    ran, why = fabric.precision_reason("cpu", None)  # the suite's CPU is taken to have no bf16 units
    assert ran == "32-true" and "no AVX-512 BF16 or AMX" in why
    monkeypatch.setattr(fabric, "cpu_bf16", lambda: "this CPU has AMX")
    assert fabric.precision_reason("cpu", None) == ("bf16-mixed", "auto: this CPU has AMX")


def _run(tmp_path, tiny_hf_dir, text_file, name, **kw):
    cfg = fl.RunConfig(model=f"hf:{tiny_hf_dir}", data=text_file, text_column="1", label_column="0", epochs=1,
                       strategy="partial:1", out=str(tmp_path / name), **kw)
    return fl.train(cfg, echo=lambda _s: None).metrics


def test_auto_bf16_is_checked_on_validation_and_kept_when_scores_hold(tmp_path, tiny_hf_dir, text_file, monkeypatch):
    monkeypatch.setattr(fabric, "cpu_bf16", lambda: "this CPU has AMX")
    # a head fit to 18 validation samples of a random 32-wide model is near separable: bf16's rounding moves its
    # loss by 0.4-1.0 standard error depending on kernel shapes; the mechanism is under test here, not the margin
    monkeypatch.setattr(prec, "HOLDS_WITHIN_SE", 1.5)
    m = _run(tmp_path, tiny_hf_dir, text_file, "auto")
    choice = m["run"]["precision_choice"]
    assert m["run"]["precision"] == choice["ran"] == "bf16-mixed"
    check = choice["check"]
    assert abs(check["loss_bf16"] - check["loss_fp32"]) <= prec.HOLDS_WITHIN_SE * check["loss_se"]
    assert check["n"] > 0
    fitted = check["fitted_head"]  # the decision: a head fit to the validation features, not the random new head
    assert abs(fitted["loss_bf16"] - fitted["loss_fp32"]) <= prec.HOLDS_WITHIN_SE * fitted["loss_se"]
    assert "a head fit to the validation features" in prec.describe(choice)
    assert "bf16" in m["history"][0]["cache"]  # the frozen prefix's activations are kept in bfloat16


def test_auto_bf16_falls_back_to_fp32_when_it_moves_validation_scores(tmp_path, tiny_hf_dir, text_file,
                                                                     monkeypatch):
    monkeypatch.setattr(fabric, "cpu_bf16", lambda: "this CPU has AMX")
    monkeypatch.setattr(prec, "HOLDS_WITHIN_SE", 0.0)  # any move at all counts as too much
    m = _run(tmp_path, tiny_hf_dir, text_file, "fallback")
    choice = m["run"]["precision_choice"]
    assert m["run"]["precision"] == choice["ran"] == "32-true"
    assert "fell back to 32-true" in choice["why"] and "fp32" in m["history"][0]["cache"]


def test_a_set_precision_is_not_second_guessed(tmp_path, tiny_hf_dir, text_file, monkeypatch):
    monkeypatch.setattr(fabric, "cpu_bf16", lambda: "this CPU has AMX")
    m = _run(tmp_path, tiny_hf_dir, text_file, "set", precision="32-true")
    assert m["run"]["precision_choice"] == {"ran": "32-true", "why": "set by --precision", "check": None}


@pytest.mark.bf16
def test_this_machine_detects_its_own_bf16_units(tmp_path, tiny_hf_dir, text_file):
    why = fabric.cpu_bf16()
    if why is None:
        pytest.skip("this CPU has no AVX-512 BF16 or AMX")
    m = _run(tmp_path, tiny_hf_dir, text_file, "real")
    assert m["run"]["precision_choice"]["why"].startswith(f"auto: {why}")


def test_the_fitted_head_check_sees_a_body_that_rounds_too_much():
    import torch

    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 60)
    x = torch.as_tensor(rng.normal(size=(120, 16)) + 1.5 * y[:, None], dtype=torch.float32)
    same = prec.fitted_head_check(x, x.bfloat16().float(), y, 2)  # bf16's rounding of good features: holds
    assert same["loss_fp32"] < 0.3 and abs(same["loss_bf16"] - same["loss_fp32"]) < 0.5 * same["loss_se"]
    noisy = prec.fitted_head_check(x, x + torch.as_tensor(rng.normal(size=(120, 16)), dtype=torch.float32), y, 2)
    assert noisy["loss_bf16"] - noisy["loss_fp32"] > 0.5 * noisy["loss_se"]  # a body this far off: falls back

