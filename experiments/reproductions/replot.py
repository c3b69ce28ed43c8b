"""Redraw a reproduction's figure from its JSON report (no training, no model).

    python -m experiments.reproductions.replot docs/figures/adding_cpu.json [--out=FIGURE.png]

The report names its reproduction; that module's ``plot(results)`` draws the figure, the
same function the reproduction itself uses. Without ``--out`` the PNG goes beside the JSON.
"""

import argparse
import importlib
import json
import os
import sys
from pathlib import Path


def replot(report_path, out_path=None):
    """Draw ``report_path``'s figure into ``out_path`` (default: the same name, ``.png``)."""
    os.environ.setdefault("MPLBACKEND", "Agg")
    report = json.loads(Path(report_path).read_text())
    if not isinstance(report, dict):
        raise KeyError("reproduction")
    module = importlib.import_module(f"experiments.reproductions.{report['reproduction']}")
    from experiments.reproductions.command import save_figure

    out_path = out_path or Path(report_path).with_suffix(".png")
    save_figure(module.plot(report["results"]), out_path)
    return out_path


def main(argv=None):
    parser = argparse.ArgumentParser(prog="replot", description=__doc__.splitlines()[0])
    parser.add_argument("report", help="a reproduction's JSON report")
    parser.add_argument("--out", help="the PNG to write (default: beside the report)")
    args = parser.parse_args(argv)
    try:
        print(f"wrote {replot(args.report, args.out)}")
    except (OSError, json.JSONDecodeError, KeyError, ModuleNotFoundError) as error:
        sys.exit(f"replot: error: {args.report} is not a reproduction report ({error})")


if __name__ == "__main__":
    main()
