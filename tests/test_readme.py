"""The README's promises: its code example runs and prints what it says, and its test command is
the one CI runs."""

import contextlib
import io
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()


def test_readme_python_example_runs_and_prints_its_comment():
    (block,) = re.findall(r"```python\n(.*?)```", README, flags=re.S)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(block, "README.md", "exec"), {})
    expected = re.search(r"print\(.*\)  # (.*)", block).group(1)
    assert printed.getvalue().strip() == expected


def test_quick_start_test_command_is_what_ci_runs():
    quick_start = re.search(r"## Quick start.*?```bash\n(.*?)```", README, flags=re.S).group(1)
    install_and_run, install_and_test = quick_start.strip().splitlines()
    assert "experiments.train" in install_and_run
    ci_script = (REPO / ".ci" / "run").read_text()
    assert install_and_test in ci_script
