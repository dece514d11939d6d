"""The ``zoo`` command: list models, print a model's card, write the model docs.

    $ zoo list 'resnet*' --exclude 'resnet1??'
    $ zoo info resnet18 --input-shape 32 32 3
    $ zoo docs --out docs/models.md --check

Thin by design: each subcommand parses its arguments and calls library functions (`zoo.list_models`,
`zoo.model_info`, `zoo._docs`). A subcommand is a pair of functions, ``_args_<name>(parser)`` and
``_cmd_<name>(args) -> int``, plus one row in `COMMANDS`; heavy imports (TensorFlow, training,
export) happen inside ``_cmd_<name>`` so ``zoo --help`` stays fast.

Exit codes: 0 success; 1 nothing matched or ``docs --check`` found a stale file; 2 a bad name,
option or value, reported as one line on stderr (``zoo: error: ...``), without a traceback.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path
from typing import Callable, NamedTuple, Sequence

import zoo

__all__ = ["COMMANDS", "build_parser", "main"]

PROG = "zoo"
USAGE_ERROR = 2


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line on stderr (exit code 2)."""

    def error(self, message: str):
        self.exit(USAGE_ERROR, f"{self.prog}: error: {message}. See '{self.prog} --help'.\n")


def _fail(message: str, code: int = USAGE_ERROR) -> int:
    one_line = re.sub(r"\s*\n\s*", " ", message.strip())
    print(f"{PROG}: error: {one_line}", file=sys.stderr)
    return code


# -- zoo list ---------------------------------------------------------------------------------------


def _args_list(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("patterns", nargs="*", metavar="PATTERN", default=["*"],
                        help="glob patterns a name must match, any of them (default: all models)")
    parser.add_argument("--exclude", action="append", default=[], metavar="PAT",
                        help="glob pattern of names to leave out; repeatable")
    parser.add_argument("--pretrained", action="store_true", help="only models that ship pretrained weights")


def _cmd_list(args: argparse.Namespace) -> int:
    from zoo._docs import models_table
    from zoo._registry import get_spec

    for pattern in args.patterns:
        if not any(c in pattern for c in "*?["):
            get_spec(pattern)  # a plain name must exist: unknown ones fail with close matches
    names = zoo.list_models(args.patterns, exclude=args.exclude, pretrained=args.pretrained)
    if not names:
        query = " ".join(repr(p) for p in args.patterns)
        query += "".join(f" --exclude {p!r}" for p in args.exclude) + (" --pretrained" * args.pretrained)
        print(f"{PROG}: no models match {query}", file=sys.stderr)
        return 1
    for line in models_table(names):
        print(line, flush=True)  # a row a model, as each is built
    return 0


# -- zoo info ---------------------------------------------------------------------------------------


def _args_info(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="a registered model name (see 'zoo list')")
    parser.add_argument("--input-shape", nargs=3, type=int, metavar=("H", "W", "C"),
                        help="compute params and MACs at this input (default: the model's default input)")


def _cmd_info(args: argparse.Namespace) -> int:
    from zoo._docs import model_card

    shape = tuple(args.input_shape) if args.input_shape else None
    print(model_card(zoo.model_info(args.name, input_shape=shape)))
    return 0


# -- zoo docs ---------------------------------------------------------------------------------------


def _args_docs(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, metavar="PATH", help="write the markdown here (default: stdout)")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 if PATH differs from what would be generated")


def _cmd_docs(args: argparse.Namespace) -> int:
    from zoo._docs import GENERATE_COMMAND, models_markdown

    if args.check and args.out is None:
        return _fail("--check needs --out PATH, the file to compare (e.g. docs/models.md)")
    text = models_markdown()
    if args.out is None:
        sys.stdout.write(text)
        return 0
    if args.check:
        current = args.out.read_text(encoding="utf-8") if args.out.is_file() else None
        if current != text:
            state = "is missing" if current is None else "is stale (it differs from the generated model list)"
            print(f"{PROG}: {args.out} {state}; regenerate it with `{GENERATE_COMMAND}`", file=sys.stderr)
            return 1
        print(f"{args.out} is up to date")
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)
    print(f"wrote {args.out}")
    return 0


# -- the command table ------------------------------------------------------------------------------


class Command(NamedTuple):
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


# In the order `zoo --help` lists them. A new subcommand (train, eval, finetune, export) adds its
# `_args_<name>` and `_cmd_<name>` and a row here.
COMMANDS: dict[str, Command] = {
    "list": Command("list models: params, MACs/FLOPs, default input, paper year", _args_list, _cmd_list),
    "info": Command("print a model's card: paper, counts, published params, options", _args_info, _cmd_info),
    "docs": Command("write (or --check) the markdown model list, docs/models.md", _args_docs, _cmd_docs),
}

_EPILOG = """\
examples:
  zoo list 'resnet*' --exclude 'resnet1??'
  zoo info resnet18 --input-shape 32 32 3
  zoo docs --out docs/models.md --check

exit codes: 0 ok; 1 nothing matched, or docs --check found a stale file; 2 bad name, option or value"""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with one subparser per row of `COMMANDS`.

    Example:
        >>> build_parser().parse_args(["info", "resnet18", "--input-shape", "32", "32", "3"]).input_shape
        [32, 32, 3]
    """
    parser = _Parser(
        prog=PROG,
        description="keras-zoo: the CS231n case-study models in tf_keras, by name.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {zoo.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, command in COMMANDS.items():
        command.add_arguments(sub.add_parser(name, help=command.help, description=command.help))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the ``zoo`` command line and returns its exit code.

    Example:
        >>> main(["list", "resnet18"])  # doctest: +SKIP
        name      family  params   MACs  FLOPs  input      year
        resnet18  resnet   11.7M  1.82G  3.64G  224x224x3  2015
        0
    """
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as done:  # --help, --version, usage errors: argparse has printed them
        return done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    try:
        return COMMANDS[args.command].run(args)
    except (ValueError, TypeError) as err:  # the library's "received X, accepted Y" errors
        return _fail(str(err))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `zoo list | head`: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
