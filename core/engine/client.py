"""Hand one CLI command to a running engine and stream its output back. Standard library only, so a
command that an engine answers never imports torch here.

`delegate(argv)` returns the command's exit status, or None when no engine answers (no socket, a
stale one, $UNLEARN_ENGINE=off, or an engine that runs other code): the caller then runs it itself.
"""

from __future__ import annotations

import os
import select
import socket
import sys

from .protocol import LOCAL_COMMANDS, code_fingerprint, receive, result_env, send, socket_path

BUSY_NOTE_AFTER_S = 2.0  # the engine answers "started" at once when it is free


def delegate(argv: list[str]) -> int | None:
    if not argv or argv[0] in LOCAL_COMMANDS or not hasattr(socket, "AF_UNIX"):
        return None
    path = socket_path()
    if path is None or not path.exists():
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(str(path))
    except OSError:  # a socket file left by an engine that was killed: run here
        sock.close()
        return None
    with sock, sock.makefile("rwb") as conn:
        try:
            send(conn, {"argv": list(argv), "cwd": os.getcwd(), "code": code_fingerprint(),
                        "env": result_env()})
            if not select.select([sock], [], [], BUSY_NOTE_AFTER_S)[0]:  # it takes one command at a time
                print(f"engine at {path} is busy with another command; waiting (Ctrl+C stops waiting)",
                      file=sys.stderr, flush=True)
            return _relay(conn, path)
        except KeyboardInterrupt:  # closing the connection stops the command in the engine
            print("interrupted", file=sys.stderr)
            return 130
        except OSError as err:
            print(f"error: the engine at {path} stopped answering ({err}); run the command again, or set "
                  "UNLEARN_ENGINE=off to run it without the engine", file=sys.stderr)
            return 1


def _relay(conn, path) -> int | None:
    while True:
        message = receive(conn)
        if message is None:
            print(f"error: the engine at {path} closed the connection before the command ended (was it "
                  "stopped?); run the command again", file=sys.stderr)
            return 1
        if "started" in message:
            continue
        if "out" in message:
            sys.stdout.write(message["out"])
            sys.stdout.flush()
        elif "err" in message:
            sys.stderr.write(message["err"])
            sys.stderr.flush()
        elif "refused" in message:
            print(f"note: {message['refused']}; running the command here instead", file=sys.stderr)
            return None
        elif "exit" in message:
            return int(message["exit"])
