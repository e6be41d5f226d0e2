"""`langflow-cms`: the command line: emulator, demo, doctor, export."""

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
        "demo", help="run the example flow against a local emulator; print what CMS holds"
    )
    demo.add_argument("options", nargs=argparse.REMAINDER, help="--runs N, --concurrency N, --chart PATH")
    demo.set_defaults(run=lambda args: _demo(args.options))

    doctor = commands.add_parser(
        "doctor", help="check configuration, credentials and the endpoint; say what to fix"
    )
    doctor.set_defaults(run=lambda args: _doctor())

    from langflow_cms import export as export_cli

    export = commands.add_parser("export", help="export a flow JSON to a standalone Python script")
    export_cli.add_arguments(export)
    export.set_defaults(run=export_cli.run)

    args = parser.parse_args(argv)
    return int(args.run(args) or 0)


def _demo(options: list[str]) -> int:
    from langflow_cms.demo import main as demo_main

    return demo_main(options)


def _doctor() -> int:
    from langflow_cms.doctor import run_doctor

    return run_doctor()


if __name__ == "__main__":
    sys.exit(main())
