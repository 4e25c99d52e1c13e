"""``pcm-sim profiles list|show|check``."""

from __future__ import annotations

import argparse

import yaml

from pcm_sim.profiles import list_profiles, load_profile

__all__ = ["register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``profiles`` command."""
    parser = sub.add_parser("profiles", help="list, show or check device profiles")
    action = parser.add_subparsers(dest="action", required=True)
    action.add_parser("list", help="names of the shipped profiles").set_defaults(handler=_list)
    show = action.add_parser("show", help="print a resolved profile as YAML")
    show.add_argument("name")
    show.set_defaults(handler=_show)
    check = action.add_parser("check", help="validate a profile file (exit 0 valid, 2 invalid)")
    check.add_argument("file")
    check.set_defaults(handler=_check)


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
