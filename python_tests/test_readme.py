"""The README's Python examples run as written (in order, sharing one namespace)."""
import os
import re

import pytest

README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")


def test_readme_examples_run(capsys, tmp_path, monkeypatch):
    pytest.importorskip("snntorch")
    monkeypatch.chdir(tmp_path)  # the examples write files (plots)
    with open(README, encoding="utf-8") as f:
        blocks = re.findall(r"```python\n(.*?)```", f.read(), flags=re.S)
    assert len(blocks) >= 3
    namespace = {}
    for block in blocks:
        exec(compile(block, "README.md", "exec"), namespace)  # noqa: S102 - our own documentation
    assert "swapped" in capsys.readouterr().out
