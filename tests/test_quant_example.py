"""examples/quant_digits.py end to end at a reduced budget (one seed, three epochs: seconds): every
method and bit width is quantized and scored, and the JSON it writes has every row of the README's
table (the committed one, bench/results/quality/quant-digits-cpu.json, comes from the full run)."""

import json
import os
import sys

import pytest

pytest.importorskip("sklearn")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "examples"))
import quant_digits  # noqa: E402


def test_digits_example_quantizes_both_models_with_every_method(tmp_path, capsys):
    path = tmp_path / "digits.json"
    quant_digits.main(["--seeds", "1", "--epochs", "3", "--json", str(path)])
    report = json.loads(path.read_text())
    assert "| cnn | splitquant-tight int2 |" in capsys.readouterr().out
    for arch in ("mlp", "cnn"):
        rows = report["models"][arch]
        names = {"fp32"} | {f"{label} int{b}" for b in (2, 4, 8) for label, _, _ in quant_digits.METHODS}
        assert set(rows) == names
        fp32 = rows["fp32"]["mean_accuracy"]
        assert fp32 > 0.85  # trained: ten classes, chance is 0.1
        for b in (2, 4, 8):
            minmax = rows[f"minmax int{b}"]
            assert b < minmax["bits_per_weight"] < b + 1  # codes plus float16 scale and zero per group
            for label in ("splitquant-paper", "splitquant-tight"):
                # the cluster ids (2 bits) and three scale/zero pairs per group cost more than min-max
                assert minmax["bits_per_weight"] + 2 < rows[f"{label} int{b}"]["bits_per_weight"] < b + 3.5
        for label, _, _ in quant_digits.METHODS:  # 8 bits barely moves a network this size
            assert abs(rows[f"{label} int8"]["mean_accuracy"] - fp32) <= 0.02
            assert len(rows[f"{label} int2"]["accuracy"]) == 1


@pytest.mark.parametrize("argv", [["--seeds", "0"], ["--epochs", "-1"]])
def test_digits_example_rejects_bad_arguments(argv, capsys):
    with pytest.raises(SystemExit):
        quant_digits.main(argv)
    assert argv[0] in capsys.readouterr().err
