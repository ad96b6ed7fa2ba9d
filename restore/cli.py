"""Command line: ``restore check | norms`` (train / eval / infer arrive with the task pipelines)."""

from __future__ import annotations

import argparse
import inspect
import sys

import yaml

from restore.config import ConfigError, load_options, to_dict


def _cmd_check(args: argparse.Namespace) -> int:
    """Validate an option file (with overrides) and print the resolved recipe."""
    opts = load_options(args.opt, args.set)
    print(f"# {args.opt}: valid" + (f" (with {len(args.set)} override(s))" if args.set else ""))
    print(yaml.safe_dump(to_dict(opts), sort_keys=False), end="")
    if opts.critic is not None:
        from restore.builders import build_critic_from_spec

        critic, norm = build_critic_from_spec(opts.critic)
        params = sum(p.numel() for p in critic.parameters())
        print(f"# critic: {type(critic).__name__}, {params:,} parameters, norm {norm!r}")
    return 0


def _cmd_norms(args: argparse.Namespace) -> int:
    """List the critic normalizations and their options with defaults."""
    from restore.registry import NORMS

    for name in NORMS.names():
        cls = NORMS.get(name)
        doc = (inspect.getdoc(cls) or "").split("\n")[0]
        params = NORMS.parameters(name)
        opts = ", ".join(f"{p}={v.default!r}" for p, v in params.items()) or "(no options)"
        print(f"{name:<5} {doc}\n      options: {opts}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="restore", description="Image-restoration GANs with swappable critic norms.")
    sub = ap.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="validate an option file and print the resolved options")
    check.add_argument("-opt", "--opt", required=True, help="YAML option file")
    check.add_argument("--set", action="append", default=[], metavar="KEY.PATH=VALUE",
                       help="override one option (repeatable), e.g. --set critic.norm.ratio=0.25")
    check.set_defaults(func=_cmd_check)
    norms = sub.add_parser("norms", help="list the critic normalizations and their options")
    norms.set_defaults(func=_cmd_norms)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
