"""The python examples in docs/systems.md run."""

import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "systems.md"


def test_systems_doc_python_examples_run():
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    assert blocks
    for block in blocks:
        exec(compile(block, str(DOC), "exec"), {})
