"""The ``depthstream`` command: parses arguments and hands over to ``stream.commands``.

Any user-facing error (a bad flag, config, source or weights file) ends as one
``depthstream: error: ...`` line and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import NoReturn

from depthstream import __version__
from depthstream.capture.errors import SourceError
from depthstream.stream.commands import bench, calibrate, evaluate, image, run, serve
from depthstream.stream.commands.common import common_options
from depthstream.stream.errors import UserError

log = logging.getLogger("depthstream")


class OneLineParser(argparse.ArgumentParser):
    """Bad arguments are a user mistake: one line and exit code 2, not a usage dump."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"depthstream: error: {message} (see {self.prog} --help)\n")


def parser() -> argparse.ArgumentParser:
    top = OneLineParser(
        prog="depthstream", description="Real-time monocular depth (MiDaS v2.1 small) on the CPU."
    )
    top.add_argument("-v", "--verbose", action="store_true", help="log more detail")
    top.add_argument("--version", action="version", version=f"depthstream {__version__}")
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = common_options()
    for command in (run, serve, image, calibrate, evaluate, bench):
        command.register(commands, common)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="depthstream: %(message)s",
        stream=sys.stderr,
    )
    log.setLevel(logging.DEBUG if args.verbose else logging.INFO)
    try:
        return args.run(args)
    except (UserError, SourceError) as exc:
        print(f"depthstream: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
