"""Installing seqjax installs the package ``seqjax`` and nothing else, with its one version."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import seqjax

REPO = Path(__file__).resolve().parents[1]


def test_the_wheel_holds_seqjax_alone_with_its_version_and_license(tmp_path):
    source = tmp_path / "checkout"  # a copy, so the build leaves nothing in the repository
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(
        ".git", "runs", "build", "*.egg-info", "__pycache__", "notebooks", "docs"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps",
                    "--no-build-isolation", "-q", "-w", str(tmp_path / "wheels")],
                   check=True, capture_output=True, timeout=300)
    (wheel,) = (tmp_path / "wheels").glob("seqjax-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {name.split("/")[0] for name in names}
    dist_info = f"seqjax-{seqjax.__version__}.dist-info"
    assert top_level == {"seqjax", dist_info}, top_level
    assert any(name.startswith(f"{dist_info}/licenses/LICENSE") for name in names), names
    assert "seqjax/recurrent/linear_scan.py" in names
