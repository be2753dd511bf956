"""The README's Python examples run as written, each block on its own (a reader copies one block)."""
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
    for i, block in enumerate(blocks):
        try:  # a fresh namespace per block: a block that needs another's imports or names fails here
            exec(compile(block, f"README.md python block {i + 1}", "exec"), {})  # noqa: S102 - our own docs
        except Exception as exc:
            raise AssertionError(f"README python block {i + 1} does not run on its own:\n{block}") from exc
    assert "swapped" in capsys.readouterr().out
