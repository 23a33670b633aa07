"""README examples are executed as tests (a habit taken from cvxpylayers)."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_has_python_examples():
    assert python_blocks(), "README lost its python example"


def test_readme_python_examples_run():
    for block in python_blocks():
        exec(compile(block, str(README), "exec"), {})


def test_readme_commands_are_the_ci_commands():
    ci = (README.parent / ".ci" / "run").read_text()
    readme = README.read_text()
    test_cmd = "python scripts/install.py --dev && python -m pytest -q"
    assert test_cmd in readme and test_cmd in ci
