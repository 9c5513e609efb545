"""The README's usage example runs (at small sizes) and its commands exist in the Makefile."""

import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def readme():
    with open(os.path.join(ROOT, "README.md")) as f:
        return f.read()


def test_usage_example_runs():
    (code,) = [b for b in re.findall(r"```python\n(.*?)```", readme(), re.S) if "import prismkit" in b]
    sizes = "B, d, F, k = 4096, 768, 24576, 32"
    assert sizes in code
    exec(code.replace(sizes, "B, d, F, k = 64, 16, 300, 4"), {})


def test_quick_start_commands_are_make_targets():
    with open(os.path.join(ROOT, "Makefile")) as f:
        targets = set(re.findall(r"^([a-z-]+):", f.read(), re.M))
    for command in ("demo", "test", "bench", "wheel", "gpu-check"):
        assert f"make {command}" in readme() and command in targets
