"""Replay or soak the deterministic simulation.

    python -m tests.simulation --seed 123 --steps 400 --profile faults -v   # one run, its step trace
    python -m tests.simulation --seeds 0-999 --steps 400 --profile calm      # many runs, a summary

String hashing is pinned (PYTHONHASHSEED=0, re-executing if needed) so that a
replay in a new process walks sets in the same order as any other.
"""

from __future__ import annotations

import argparse
import os
import sys

from tests.simulation.profiles import CI_PROFILES, KNOWN_DEFECT_PROFILES, PROFILES


def _seeds(text: str) -> list[int]:
    if "-" in text:
        first, last = text.split("-", 1)
        return list(range(int(first), int(last) + 1))
    return [int(part) for part in text.split(",")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.simulation", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, help="run this one seed")
    parser.add_argument("--seeds", help="a range (0-999) or a list (1,5,9) of seeds")
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--profile", default="faults", help=f"one of {', '.join(PROFILES)} or 'ci' (all of {', '.join(CI_PROFILES)})")
    parser.add_argument("-v", "--verbose", action="store_true", help="print the step trace")
    args = parser.parse_args(argv)

    from tests.simulation.runner import run_batch, run_seed

    if args.seed is not None:
        result = run_seed(args.seed, args.profile, args.steps)
        if args.verbose:
            print("\n".join(result.trace))
        print(f"seed {result.seed} profile {result.profile}: {len(result.trace)} trace lines, hash {result.trace_hash[:16]}")
        for violation in result.violations:
            print(f"  {violation}")
        print("OK" if result.ok else f"FAILED: {len(result.violations)} violation(s)\n  replay: {result.replay_command()}")
        return 0 if result.ok else 1
    seeds = _seeds(args.seeds or "0-99")
    profiles = CI_PROFILES if args.profile == "ci" else (args.profile,)
    failed = False
    for profile in profiles:
        batch = run_batch(profile, seeds, args.steps)
        print(batch.summary(), flush=True)
        if batch.failures:
            print(batch.failure_report(), flush=True)
            failed = failed or profile not in KNOWN_DEFECT_PROFILES
    return 1 if failed else 0


if __name__ == "__main__":
    if os.environ.get("PYTHONHASHSEED") != "0":
        os.environ["PYTHONHASHSEED"] = "0"
        os.execv(sys.executable, [sys.executable, "-m", "tests.simulation", *sys.argv[1:]])
    sys.exit(main())
