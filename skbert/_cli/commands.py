"""The ``skbert`` command line: ``skbert embed``, ``info``, ``export``, ``demo``.

Each subcommand lives in its own module, which provides
``add_arguments(parser)`` and ``run(args) -> int``; this module only wires them
into argparse and turns failures into one clear message, in the words of the
command line (``--pooling cls``, not ``pooling='cls'``), and a non-zero exit code.
Subcommand modules import their heavy dependencies (scikit-learn estimators,
torch) only when they run, so ``skbert --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from .._core.versions import __version__
from .options import cli_wording, join_negative_values

__all__ = ["main"]

#: Subcommand name -> (module that implements it, one-line help).
COMMANDS: dict[str, tuple[str, str]] = {
    "embed": (
        "skbert._cli.embed",
        "embed a file of texts (CSV, TSV, Parquet, JSON Lines, text) into a .npy "
        "or Parquet file of sentence vectors, streaming",
    ),
    "info": (
        "skbert._cli.info",
        "describe a checkpoint: layers, sizes, tokenizer, weights and whether it "
        "has a trained pooler",
    ),
    "export": (
        "skbert._cli.export",
        "export a fitted vectorizer or pipeline (joblib) to one ONNX file that "
        "skbert.runtime runs without torch, transformers or scikit-learn",
    ),
    "demo": (
        "skbert._cli.demo",
        "train and evaluate a sentiment classifier on BERT sentence vectors, "
        "choosing the pooling by cross-validation",
    ),
}

#: Exit codes: 1 for a failure while running, 2 for bad usage (argparse's own).
EXIT_FAILURE = 1
EXIT_INTERRUPTED = 130


def build_parser() -> argparse.ArgumentParser:
    """The ``skbert`` argument parser with one sub-parser per command."""
    parser = argparse.ArgumentParser(
        prog="skbert",
        description="BERT sentence vectors as a scikit-learn transformer.",
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {__version__}"
    )
    subparsers = parser.add_subparsers(
        title="commands", dest="command", metavar="COMMAND", required=True
    )
    for name, (module_name, help_text) in COMMANDS.items():
        module = importlib.import_module(module_name)
        sub = subparsers.add_parser(
            name,
            help=help_text,
            description=module.__doc__.strip().splitlines()[0],
        )
        module.add_arguments(sub)
        sub.set_defaults(run=module.run, command_parser=sub)
    return parser


def _subcommand_parser(parser: argparse.ArgumentParser, argv: list[str]):
    """The parser of the subcommand ``argv`` names, or ``parser`` itself."""
    subparsers = next(
        (a for a in parser._actions if isinstance(a, argparse._SubParsersAction)),
        None,
    )
    command = next((arg for arg in argv if not arg.startswith("-")), None)
    if subparsers is None or command not in subparsers.choices:
        return parser
    return subparsers.choices[command]


def _error_text(message: str) -> str:
    """The message with its own line breaks kept (a recipe to run reads as
    code), trailing spaces and blank lines dropped."""
    lines = [line.rstrip() for line in message.strip().splitlines()]
    return "\n".join(line for line in lines if line.strip())


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``skbert`` command line and return its exit code.

    Parameters
    ----------
    argv : sequence of str, default=None
        The arguments after the program name; ``None`` reads ``sys.argv[1:]``.

    Returns
    -------
    exit_code : int
        ``0`` on success, ``1`` when the command failed (the reason is printed
        to stderr, naming command-line options), ``2`` for invalid arguments,
        ``130`` when interrupted.

    Examples
    --------
    >>> from skbert._cli import main
    >>> main(["--version"])  # doctest: +ELLIPSIS
    skbert ...
    0
    """
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    argv = join_negative_values(argv, _subcommand_parser(parser, argv))
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version and usage errors
        return exc.code if isinstance(exc.code, int) else EXIT_FAILURE
    try:
        return int(args.run(args))
    except KeyboardInterrupt:
        print("\nskbert: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (ImportError, OSError, ValueError, RuntimeError) as exc:
        # Expected failures (missing model or extra, bad option for this model,
        # out of memory) get one line; anything else is a bug and keeps its
        # traceback.
        message = cli_wording(_error_text(str(exc)), args.command_parser)
        print(f"skbert {args.command}: error: {message}", file=sys.stderr)
        return EXIT_FAILURE
