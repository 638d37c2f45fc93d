"""Command-line options shared by the ``skbert`` subcommands.

Argument types that turn text into the values :class:`~skbert.BertCLSVectorizer`
accepts, so that a bad value is an argparse usage error (exit code 2) with a
message naming the option, rather than a failure after the model has loaded.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from ._options import DEFAULT_BATCH_SIZE, POOLINGS

__all__ = [
    "POOLINGS",
    "add_batch_size_argument",
    "add_device_argument",
    "add_source_arguments",
    "at_least",
    "cache_value",
    "device_value",
    "layers_value",
]


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
    parser.add_argument(
        "--batch-size",
        type=at_least(1),
        default=DEFAULT_BATCH_SIZE,
        metavar="N",
        help="texts per forward pass (default: %(default)s)",
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
