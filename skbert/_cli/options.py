"""Command-line options shared by the ``skbert`` subcommands.

Argument types that turn text into the values :class:`~skbert.BertCLSVectorizer`
accepts, so that a bad value is an argparse usage error (exit code 2) with a
message naming the option, rather than a failure after the model has loaded.
"""

from __future__ import annotations

import argparse
import ast
import re
import shlex
from collections.abc import Callable, Sequence

from .._core.options import DEFAULT_BATCH_SIZE, POOLINGS

__all__ = [
    "POOLINGS",
    "add_batch_size_argument",
    "add_device_argument",
    "add_source_arguments",
    "at_least",
    "cache_value",
    "cli_wording",
    "device_value",
    "join_negative_values",
    "layers_value",
]

#: Estimator parameters whose option has another name.
_OPTION_DEST = {"model_name_or_path": "model"}
#: A Python value as the estimator's messages write it.
_PYTHON_VALUE = (
    r"'[^']*'|\"[^\"]*\"|\([^()]*\)|\[[^\[\]]*\]|-?\d+(?:\.\d+)?|True|False|None"
)
#: A comma list of integers starting with a minus, such as ``-2,-1``.
_NEGATIVE_LIST = re.compile(r"-\d+(\s*,\s*-?\d+)*")


def at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: an integer ``>= minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected an integer, got {text!r}"
            ) from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    parse.__name__ = "integer"
    return parse


def layers_value(text: str) -> int | tuple[int, ...]:
    """An argparse type: ``-1`` -> ``-1``; ``1,-1`` -> ``(1, -1)``."""
    parts = [part.strip() for part in text.split(",")]
    try:
        values = tuple(int(part) for part in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a layer index or a comma-separated list such as 1,-1; "
            f"got {text!r}"
        ) from None
    return values[0] if len(values) == 1 else values


def cache_value(text: str) -> str | None:
    """An argparse type: ``none`` -> ``None``; ``auto`` or a directory as is."""
    return None if text.lower() == "none" else text


def device_value(text: str) -> str | list[str]:
    """An argparse type: ``cuda:0`` as is; ``cuda:0,cuda:1`` -> a list."""
    parts = [part.strip() for part in text.split(",") if part.strip()]
    if not parts:
        raise argparse.ArgumentTypeError("expected a device such as cpu or cuda:0")
    return parts[0] if len(parts) == 1 else parts


def add_source_arguments(parser: argparse._ActionsContainer) -> None:
    """Options saying where the checkpoint comes from (hub revision, trust)."""
    parser.add_argument(
        "--revision",
        default=None,
        help="Hugging Face Hub branch, tag or commit of the model (default: main)",
    )
    parser.add_argument(
        "--local-files-only",
        action="store_true",
        help="never contact the Hugging Face Hub; use its local cache only "
        "(HF_HUB_OFFLINE=1 does the same for every command)",
    )
    parser.add_argument(
        "--trust-remote-code",
        action="store_true",
        help="allow the checkpoint to run its own Python code (only for models "
        "whose author you trust)",
    )


def add_batch_size_argument(parser: argparse._ActionsContainer) -> None:
    """``--batch-size``, with the vectorizer's default."""
    count = at_least(1)

    def batch_size(text: str) -> int | str:
        return text if text == "auto" else count(text)

    batch_size.__name__ = "batch size"
    parser.add_argument(
        "--batch-size",
        type=batch_size,
        default=DEFAULT_BATCH_SIZE,
        metavar="N",
        help='texts per forward pass, or "auto": 32 on a CPU, 128 on a GPU '
        "(default: %(default)s)",
    )


def add_device_argument(parser: argparse._ActionsContainer) -> None:
    """``--device``: one torch device, or a comma list of them."""
    parser.add_argument(
        "--device",
        type=device_value,
        default="auto",
        help='torch device: "auto" (CUDA, then MPS, else CPU), "cpu", "cuda:1", '
        '"cuda" (every visible GPU) or a comma list such as cuda:0,cuda:1 '
        "(default: %(default)s)",
    )


def _long_options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """``--option`` string -> its action, for every long option of ``parser``."""
    return {
        option: action
        for action in parser._actions  # argparse has no public list of them
        for option in action.option_strings
        if option.startswith("--")
    }


def join_negative_values(
    argv: Sequence[str], parser: argparse.ArgumentParser
) -> list[str]:
    """``--layers -2,-1`` -> ``--layers=-2,-1`` for options of type
    :func:`layers_value`.

    argparse takes an argument that starts with a minus and is not a plain
    negative number for an option, so without this only the ``=`` spelling
    would work.
    """
    takes_negative = {
        option
        for option, action in _long_options(parser).items()
        if action.type is layers_value
    }
    joined: list[str] = []
    for arg in argv:
        if (
            joined
            and joined[-1] in takes_negative
            and _NEGATIVE_LIST.fullmatch(arg) is not None
        ):
            joined[-1] = f"{joined[-1]}={arg}"
        else:
            joined.append(arg)
    return joined


def _as_typed(option: str, action: argparse.Action, value: str) -> str:
    """How a user types ``option`` with the Python ``value``."""
    negated = f"--no-{option[2:]}"
    if value == "True":
        return option
    if value in ("False", "None"):
        return negated if negated in action.option_strings else f"no {option}"
    try:
        parsed = ast.literal_eval(value)
    except (ValueError, SyntaxError):  # not a Python literal after all
        return f"{option} {value}"
    if isinstance(parsed, (tuple, list)):
        return f"{option} {','.join(str(part) for part in parsed)}"
    return f"{option} {shlex.quote(str(parsed))}"


def cli_wording(message: str, parser: argparse.ArgumentParser) -> str:
    """``message`` with each ``parameter=value`` written as the option to type.

    The estimator's errors name its parameters (``pooling='cls'``); on the
    command line the same advice reads ``--pooling cls``.

    Examples
    --------
    >>> parser = argparse.ArgumentParser()
    >>> _ = parser.add_argument("--pooling")
    >>> _ = parser.add_argument("--layers", type=layers_value)
    >>> cli_wording("Use pooling='cls', or layers=(1, -1).", parser)
    'Use --pooling cls, or --layers 1,-1.'
    """
    names: dict[str, tuple[str, argparse.Action]] = {}
    for option, action in _long_options(parser).items():
        names.setdefault(action.dest, (option, action))
    for parameter, dest in _OPTION_DEST.items():
        if dest in names:
            names[parameter] = names[dest]
    if not names:
        return message
    pattern = re.compile(
        rf"(?<![\w-])({'|'.join(sorted(map(re.escape, names), key=len, reverse=True))})"
        rf"=({_PYTHON_VALUE})"
    )

    def typed(match: re.Match) -> str:
        option, action = names[match.group(1)]
        return _as_typed(option, action, match.group(2))

    return pattern.sub(typed, message)
