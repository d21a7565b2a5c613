"""Print the Beam flags of one deployed region, read from `terraform output -json`.

    terraform -chdir=infra/gcp output -json runner_profiles \\
      | python -m runners --runner DataflowRunner --region europe-west1

The output is shell-quoted, ready for `python -m pipelines.run $(...)`.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Mapping, Sequence

from runners import PROFILES, ProfileError, profile_for


def region_profiles(document: Mapping[str, object]) -> Mapping[str, Mapping[str, object]]:
    """Accept `terraform output -json` (all outputs) or `terraform output -json runner_profiles`."""
    if "runner_profiles" in document:
        document = document["runner_profiles"]  # type: ignore[assignment]
    if isinstance(document, Mapping) and "value" in document and "type" in document:
        document = document["value"]  # type: ignore[assignment]
    if not isinstance(document, Mapping):
        raise ProfileError("terraform output has no runner_profiles map; run `terraform output -json runner_profiles`.")
    return document  # type: ignore[return-value]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runners", description=__doc__.splitlines()[0])
    runners = ", ".join(f"{key.capitalize()}Runner" for key in PROFILES)
    parser.add_argument("--runner", required=True, help=f"One of: {runners}.")
    parser.add_argument("--region", required=True, help="A region key of the runner_profiles output.")
    parser.add_argument("--tf-output", help="File with the JSON; default: standard input.")
    ns = parser.parse_args(argv)
    try:
        text = open(ns.tf_output, encoding="utf-8").read() if ns.tf_output else sys.stdin.read()
        profiles = region_profiles(json.loads(text))
        if ns.region not in profiles:
            raise ProfileError(
                f"--region={ns.region} is not deployed; terraform output has {', '.join(sorted(profiles))}."
            )
        flags = profile_for(ns.runner).args_from_terraform(profiles[ns.region])
    except (ProfileError, json.JSONDecodeError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(shlex.join(flags))
    return 0


if __name__ == "__main__":
    sys.exit(main())
