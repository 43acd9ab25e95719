#!/usr/bin/env python3
"""Plot the training/eval loss of HF Trainer runs: tools/plot_loss.py RUN_DIR... -o loss.png"""

import argparse
import sys

from west.scoring.loss_plot import TrainerStateError, plot_losses, read_curves


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    p.add_argument("-o", "--output", required=True, help="image file to write (e.g. loss.png)")
    p.add_argument("--title", default="Training loss", help="figure title")
    args = p.parse_args(argv)
    try:
        runs = [read_curves(d) for d in args.run_dirs]
    except (TrainerStateError, OSError) as e:
        print(f"plot_loss.py: error: {e}", file=sys.stderr)
        return 1
    for run in runs:
        if not run.train and not run.eval:
            print(f"plot_loss.py: warning: {run.name}: no loss in log_history", file=sys.stderr)
    plot_losses(runs, args.output, title=args.title)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
