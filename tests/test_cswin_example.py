"""examples/cswin_segmentation.py runs end to end at a tiny budget (the README's full run trains to
validation mIoU 0.5): the backbone comparison, training steps, evaluation, the final verdict."""

import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLE = os.path.join(ROOT, "examples", "cswin_segmentation.py")


def run(*args):
    return subprocess.run([sys.executable, EXAMPLE, *args], capture_output=True, text=True, timeout=600)


def test_segmentation_example_runs():
    result = run("--image-size", "64", "--batch", "2", "--max-steps", "2", "--eval-every", "1", "--val-images", "2",
                 "--compare-steps", "1", "--target-miou", "0")  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert re.search(r"training step, batch 2 at 64x64: prismkit backbone \d+ ms, \d+ MiB peak; official backbone "
                     r"code \d+ ms, \d+ MiB peak", out), out  # fmt: skip
    assert re.search(r"step    1  loss \d+\.\d+  val mIoU 0\.\d+", out), out
    assert "reached the target 0.0" in out


def test_segmentation_example_rejects_bad_arguments():
    result = run("--image-size", "16")
    assert result.returncode == 2 and "--image-size must be at least 32" in result.stderr
    result = run("--batch", "0")
    assert result.returncode == 2 and "--batch must be at least 1" in result.stderr
