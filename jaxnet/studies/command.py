"""``python -m jaxnet.studies NAME [--seeds 8] [--epochs 20] [--out DIR]`` (and ``jaxnet study``).

Runs a built-in study (or ``all``, or a JSON file of :class:`~jaxnet.studies.Study` fields),
prints its Markdown table and writes ``study_NAME.json``, ``.md`` and ``.png`` to ``--out``.
Turns on jaxnet's persistent compilation cache (``JAXNET_CACHE_DIR``) unless ``--no-cache``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from jaxnet.arguments import Parser, count, output_folder
from jaxnet.compilation import enable_compilation_cache
from jaxnet.errors import JaxnetError
from jaxnet.studies.builtin import STUDIES
from jaxnet.studies.report import to_markdown
from jaxnet.studies.run import run_study


def build_parser(prog: str = "python -m jaxnet.studies") -> argparse.ArgumentParser:
    parser = Parser(prog=prog, description="Many-seed comparative studies.")
    add_arguments(parser, sorted(STUDIES))
    return parser


def add_arguments(parser: argparse.ArgumentParser, names=None) -> None:
    """The study options, for this module's parser or a ``jaxnet study`` sub-command."""
    choices = f" ({', '.join(names)}, or all)" if names else ""
    parser.add_argument("name", help=f"a built-in study{choices} or a JSON spec file")
    parser.add_argument(
        "--seeds", type=count(1), default=None, help="seeds per cell (default: the study's)"
    )
    parser.add_argument(
        "--epochs", type=count(1), default=None, help="epochs (default: the study's)"
    )
    parser.add_argument(
        "--n-train", type=count(1), default=None, help="use at most N training examples"
    )
    parser.add_argument("--out", default="out/studies", help="output folder (default out/studies)")
    parser.add_argument("--no-diagnose", action="store_true", help="skip the verdict at init")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    parser.add_argument(
        "--no-cache", action="store_true", help="do not use the persistent compilation cache"
    )


def run_from_args(args) -> int:
    """Run the study (or studies) named in parsed ``args``; print the tables."""
    output_folder(args.out)  # a file there is an error now, not after the training
    if not args.no_cache:
        # Cells with the same initialisation or evaluation code then compile it once (and a
        # second run compiles nothing); the compile times reported become cache-load times.
        enable_compilation_cache()
    if args.name == "all":
        specs = list(STUDIES)
    elif args.name.endswith(".json"):
        specs = [json.loads(Path(args.name).read_text())]
    else:
        specs = [args.name]
    for name_or_spec in specs:
        result = run_study(
            name_or_spec,
            seeds=args.seeds,
            epochs=args.epochs,
            n_train=args.n_train,
            out=args.out,
            diagnose=not args.no_diagnose,
            verbose=0 if args.quiet else 1,
        )
        print(to_markdown(result))
        print(f"wrote {args.out}/study_{result['study']['name']}.{{json,md,png}}")
    return 0


def main(argv=None) -> int:
    """Entry point; returns the exit status (2 for a bad study name or option)."""
    args = build_parser().parse_args(argv)
    try:
        return run_from_args(args)
    except (JaxnetError, OSError, json.JSONDecodeError) as error:
        print(f"jaxnet study: error: {error}", file=sys.stderr)
        return 2
