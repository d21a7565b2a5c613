"""What the command-line tools over a pipeline's output table (query, compact) share."""

from __future__ import annotations

import argparse

OUTPUT_FORMS = "a directory or file:///dir, s3://bucket/prefix, gs://bucket/prefix or azfs://account/container/prefix"


def table_parser(prog: str, description: str, epilog: str, output_help: str) -> argparse.ArgumentParser:
    """A parser whose first argument is the table: the --output of a pipeline run."""
    parser = argparse.ArgumentParser(
        prog=prog, description=description, epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("output_uri", metavar="OUTPUT_URI", help=output_help)
    return parser
