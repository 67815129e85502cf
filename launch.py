"""Start Unlearn Studio: `python launch.py [--model M] [--device D] [--port P] ...`."""

import sys

from gui.launcher import main

if __name__ == "__main__":
    raise SystemExit(main(["studio", *sys.argv[1:]]))
