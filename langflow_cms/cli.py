"""`langflow-cms`: the command line (emulator, demo, and the tools later issues add)."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="langflow-cms", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    from langflow_cms.emulator import cli as emulator_cli

    emulator = commands.add_parser("emulator", help="run the local CMS-compatible emulator")
    emulator_cli.add_arguments(emulator)
    emulator.set_defaults(run=emulator_cli.run)

    demo = commands.add_parser(
        "demo", help="start an emulator, record a sample workload, print what CMS holds"
    )
    demo.set_defaults(run=lambda args: __import__("langflow_cms.demo").demo.main())

    args = parser.parse_args(argv)
    return int(args.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
