"""Entry point of the Dataflow flex template launcher: runs `python -m pipelines.run`.

The launcher passes the template parameters as `--name=value` arguments, so this file
only hands over to the CLI module.
"""

import runpy

if __name__ == "__main__":
    runpy.run_module("pipelines.run", run_name="__main__", alter_sys=True)
