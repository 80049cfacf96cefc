"""The README's Python quick start runs as written, and its set-up commands are what CI runs."""

from __future__ import annotations

import re
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def test_quick_start_runs():
    blocks = re.findall(r"```python\n(.*?)```", README, re.S)
    assert blocks, "README has no python block"
    namespace: dict[str, object] = {}
    exec(compile(blocks[0], "README.md", "exec"), namespace)
    model = namespace["model"]
    model(torch.randn(4, 64)).sum().backward()
    namespace["opt"].step()


def test_ci_runs_the_readme_commands():
    ci = (ROOT / ".ci" / "run").read_text()
    commands = re.findall(r"```bash\n(pip install .*?)\n```", README)
    assert len(commands) == 2
    install, test = (c.split(" && ") for c in commands)
    assert install[0] == test[0] and install[0] in ci.splitlines()
    assert test[1] in ci.splitlines()
