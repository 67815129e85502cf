"""Start Unlearn Studio: `python launch.py [--model M] [--device D] [--port P] ...`."""

from core.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["studio", *__import__("sys").argv[1:]]))
