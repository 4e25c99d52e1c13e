"""``pcm-sim profiles list|show|check|fit``."""

from __future__ import annotations

import argparse
import time

import yaml

from pcm_sim.commands.args import nonnegative_int, output_dir, output_file
from pcm_sim.profiles import list_profiles, load_profile

__all__ = ["register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``profiles`` command."""
    parser = sub.add_parser("profiles", help="list, show, check or fit device profiles")
    action = parser.add_subparsers(dest="action", required=True)
    action.add_parser("list", help="names of the shipped profiles").set_defaults(handler=_list)
    show = action.add_parser("show", help="print a resolved profile as YAML")
    show.add_argument("name")
    show.set_defaults(handler=_show)
    check = action.add_parser("check", help="validate a profile file (exit 0 valid, 2 invalid)")
    check.add_argument("file")
    check.set_defaults(handler=_check)
    fit = action.add_parser(
        "fit",
        help="fit a profile to measured conductances (CSV: device, g_target_us, t_s, g_us, "
        "optional read, temperature_k)",
    )
    fit.add_argument("measurements", help="CSV file, one row per read")
    fit.add_argument(
        "--base",
        default="pcm_nandakumar2019",
        help="profile whose window, read duration, periphery and tile are kept "
        "(default pcm_nandakumar2019)",
    )
    fit.add_argument("--out", required=True, type=_yaml_path, help="profile to write (.yaml)")
    fit.add_argument("--name", default=None, help="profile name (default: the --out file name)")
    fit.add_argument("--report", type=output_dir, default=None, help="write a fit report here")
    fit.add_argument(
        "--seed", type=nonnegative_int, default=0, help="folds, bootstrap and report chips"
    )
    fit.set_defaults(handler=_fit)


def _yaml_path(text: str) -> str:
    if not text.endswith((".yaml", ".yml")):
        raise argparse.ArgumentTypeError(f"expected a .yaml or .yml path, got {text!r}")
    return output_file(text)


def _list(args: argparse.Namespace) -> int:
    for name in list_profiles():
        profile = load_profile(name)
        print(f"{name:24s} {profile.provenance.source}")
    return 0


def _show(args: argparse.Namespace) -> int:
    print(yaml.safe_dump(load_profile(args.name).to_dict(), sort_keys=False), end="")
    return 0


def _check(args: argparse.Namespace) -> int:
    profile = load_profile(args.file)
    print(f"{args.file}: valid profile {profile.name!r}")
    return 0


def _fit(args: argparse.Namespace) -> int:
    from pathlib import Path

    from pcm_sim.fitting import fit_profile, read_measurements
    from pcm_sim.fitting.report import write_fit_report
    from pcm_sim.studies.outputs import write_text_atomic

    start = time.perf_counter()
    base = load_profile(args.base)
    m = read_measurements(args.measurements)
    name = args.name or Path(args.out).stem
    result = fit_profile(m, base, name=name, seed=args.seed)
    elapsed = time.perf_counter() - start
    print(
        f"fitted {name!r} to {m.rows} reads of {m.devices} devices in {elapsed:.1f} s "
        f"(base {base.name})"
    )
    print(f"t0_s: {result.t0.reason}")
    for verdict in result.verdicts:
        print(verdict.line())
    for verdict in result.base_verdicts:
        if not verdict.fits:
            print(verdict.line())
    if args.report:
        path = write_fit_report(result, args.report, profile_path=args.out, seed=args.seed)
        print(f"wrote {path}")
    write_text_atomic(args.out, result.to_yaml())
    print(f"wrote {args.out}")
    return 0
