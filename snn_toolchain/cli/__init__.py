"""``train-export``, the command line: ``parser.py`` builds its options (``parser.DESCRIPTION``,
shown by ``--help``, lists the commands), the ``commands_*.py`` modules run them, and ``main`` picks
the command and turns every user-facing problem into one line on stderr and exit status 2.

The commands import what they need inside their functions: `train-export --help` and a bad option
then answer without loading torch or Lava (start-up time).
"""

from __future__ import annotations

import logging
import signal
import sys
import threading

from snn_toolchain.atomic import describe_os_error
from snn_toolchain.cli.commands_export import cmd_export, cmd_import_nir
from snn_toolchain.cli.commands_pipeline import cmd_pipeline
from snn_toolchain.cli.commands_run import (  # noqa: F401 (DEPLOY_EXIT_CODES re-exported)
    DEPLOY_EXIT_CODES, cmd_deploy, cmd_parity, cmd_report, cmd_run)
from snn_toolchain.cli.commands_train import (  # noqa: F401 (config_from_args re-exported)
    cmd_data, cmd_frontier, cmd_sweep, cmd_train, config_from_args)
from snn_toolchain.cli.parser import SUBCOMMANDS, _parse_bounds, build_parser  # noqa: F401 (_parse_bounds re-exported for the tests)
from snn_toolchain.errors import Interrupted, ToolchainError, one_line


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in SUBCOMMANDS + ("-h", "--help"):
        argv.insert(0, "pipeline")
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    handlers = {"pipeline": cmd_pipeline, "train": cmd_train, "sweep": cmd_sweep, "frontier": cmd_frontier,
                "export": cmd_export, "import-nir": cmd_import_nir, "run": cmd_run, "parity": cmd_parity,
                "report": cmd_report, "deploy": cmd_deploy, "data": cmd_data}
    in_main_thread = threading.current_thread() is threading.main_thread()   # signals need it
    previous_sigterm = signal.signal(signal.SIGTERM, _raise_interrupted) if in_main_thread else None
    try:
        handlers[args.command](args)
    except ToolchainError as err:
        print(f"train-export: error: {one_line(err)}", file=sys.stderr)   # one line, always
        return 2
    except OSError as err:   # the file system refused: a user's problem to fix, told in one line
        print(f"train-export: error: {describe_os_error(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:
        signum = err.signum if isinstance(err, Interrupted) else signal.SIGINT
        print("train-export: interrupted", file=sys.stderr)
        return 128 + int(signum)
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous_sigterm)
    return 0


def _raise_interrupted(signum, frame):
    # SIGTERM takes the same clean-up path as Ctrl-C: every `finally` runs, Lava workers are stopped
    raise Interrupted(signum)
