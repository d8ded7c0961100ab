"""The application file telco-ra hands to spark-submit: `spark-submit [options] cluster/driver.py run --conf ...`.

Why a file: spark-submit starts a Python application from a script, not from a console-script entry point. This
one only forwards its arguments to the `telco-ra` command line; the project itself reaches the driver and the
executors through `--py-files` (README, "Running on a cluster"), so the script imports nothing else.
"""

import sys

from jobs.cli import main

if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
