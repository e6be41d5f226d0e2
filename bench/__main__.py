"""``python -m bench [--quick] [--scale X] [--out PATH] [--only N,...]``: run, print and write the table.

Full run: about 15 minutes on an idle 2-core machine. The two flow rows (2 and 11) time about 4,800 runs
per flow, three times as many rounds as before, so round-to-round noise moves their figures about 0.6
times as far (1/√3); the one-shot ``lfx run`` rows take 13 runs of the CLI. ``--quick`` shrinks every
workload about tenfold (a few minutes) for a sanity check; its figures are noisier, not different in kind.
"""

from __future__ import annotations

import argparse
import pickle
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.common import Section, machine_info
from bench.report import render

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "docs" / "performance.md"
EXECUTION_ORDER = ["1", "3", "4", "5", "7", "8", "10", "13", "14", "12", "6", "2", "11", "9", "15", "16"]
"""What does not need lfx runs first: importing lfx triples the heap every garbage collection walks,
which would land in the µs-scale and tracemalloc measurements; the subprocess-only row 9 goes last."""


def in_fresh_interpreter(module: str, **kwargs: object) -> Section:
    """``bench.<module>.run(**kwargs)`` in a new interpreter. For the rows whose goal is a worst-case
    ``record()`` latency (7 and 14): in the shared process the objects earlier rows leave behind (a million
    samples of row 4, row 10's reporter) are walked by every full pass of the garbage collector, which then
    costs the bench's heap, not ours, inside whichever timed call it lands (5 ms seen in row 14's
    no-collector column after rows 1-13, 0.6 ms alone)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "section.pickle"
        code = (
            "import pickle, sys\n"
            f"from bench import {module}\n"
            f"section = {module}.run(**pickle.loads(bytes.fromhex(sys.argv[1])))\n"
            "open(sys.argv[2], 'wb').write(pickle.dumps(section))\n"
        )
        root = Path(__file__).resolve().parents[1]
        argv = [sys.executable, "-c", code, pickle.dumps(kwargs).hex(), str(out)]
        subprocess.run(argv, cwd=root, check=True)
        return pickle.loads(out.read_bytes())


def sections(scale: float, quick: bool, rounds: int | None = None) -> dict[str, Callable[[], Section]]:
    """Measurement number -> how to run it at this size (imports are lazy: lfx alone takes seconds)."""

    def hot() -> Section:
        from bench import hotpath

        return hotpath.run(scale, rounds=rounds or (15 if quick else 21))

    def flow() -> Section:
        from bench import flow

        return flow.run(scale, rounds=rounds or (15 if quick else 121))

    def api() -> Section:
        from bench import api_calls

        return api_calls.run(scale)

    def acc() -> Section:
        from bench import accuracy

        return accuracy.run(scale)

    def mem() -> Section:
        from bench import memory

        return memory.run(scale)

    def iso() -> Section:
        from bench import isolation

        return isolation.run(scale, rounds=rounds or 15)

    def stall() -> Section:
        return in_fresh_interpreter("stall", scale=scale, rounds=rounds or 10)

    def sketch() -> Section:
        from bench import sketchcost

        return sketchcost.run(scale, rounds=rounds or 15)

    def oneshot() -> Section:
        from bench import oneshot

        return oneshot.run(scale)

    def churn() -> Section:
        from bench import churn

        return churn.run(scale)

    def fleet() -> Section:
        from bench import fleetcost

        return fleetcost.run(scale)

    def bias() -> Section:
        from bench import fleetbias

        return fleetbias.run(scale)

    def eviction() -> Section:
        return in_fresh_interpreter("eviction", scale=scale)

    def exittime() -> Section:
        from bench import exittime

        return exittime.run(scale)

    def stalldrain() -> Section:
        from bench import stalldrain

        return stalldrain.run(scale)

    def node() -> Section:
        from bench import node

        return node.run(scale, rounds=rounds or (15 if quick else 120))

    return {
        "1": hot,
        "2": flow,
        "3": api,
        "4": acc,
        "5": mem,
        "6": iso,
        "7": stall,
        "8": sketch,
        "9": oneshot,
        "10": churn,
        "11": node,
        "12": fleet,
        "13": bias,
        "14": eviction,
        "15": exittime,
        "16": stalldrain,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="about a minute: every workload ~10× smaller")
    parser.add_argument("--scale", type=float, help="workload size factor (default 1, or 0.1 with --quick)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="markdown file to write")
    parser.add_argument("--rounds", type=int, help="override every measurement's round count (smoke tests)")
    parser.add_argument("--only", help="comma-separated measurement numbers, e.g. 1,3")
    args = parser.parse_args(argv)
    scale = args.scale if args.scale is not None else (0.1 if args.quick else 1.0)
    info = machine_info()
    chosen = sections(scale, args.quick, args.rounds)
    if args.only:
        chosen = {k: v for k, v in chosen.items() if k in args.only.split(",")}
    measured: dict[str, Section] = {}
    started = time.monotonic()
    for number in sorted(chosen, key=EXECUTION_ORDER.index):
        t0 = time.monotonic()
        print(f"[bench] measurement {number} ...", file=sys.stderr, flush=True)
        measured[number] = chosen[number]()
        print(f"[bench] measurement {number} done in {time.monotonic() - t0:.0f} s", file=sys.stderr)
    results = [measured[number] for number in chosen]  # the table in measurement order
    elapsed = time.monotonic() - started
    command = (
        "python -m bench"
        + (" --quick" if args.quick else "")
        + (f" --scale {args.scale:g}" if args.scale is not None else "")
    )
    text = render(info, results, command=command, elapsed=elapsed)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(f"[bench] wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
