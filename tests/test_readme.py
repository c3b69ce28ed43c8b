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


def test_reproduction_commands_and_committed_figures_exist():
    docs = (REPO / "docs" / "reproductions.md").read_text()
    for text in (README, docs):
        modules = set(re.findall(r"python -m experiments\.reproductions\.(\w+)", text))
        assert len(modules) >= 6
        for module in modules:
            assert (REPO / "experiments" / "reproductions" / f"{module}.py").exists(), module
        for figure in re.findall(r"figures/(\w+)\.png", text):
            for suffix in (".png", ".json"):  # every committed figure has its report beside it
                assert (REPO / "docs" / "figures" / f"{figure}{suffix}").exists(), figure + suffix
