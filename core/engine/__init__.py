"""A resident engine for the CLI: one process keeps the imports and the loaded models warm, so a
scripted `unlearn-studio` command spends its time on the work, not on starting torch and diffusers.

    protocol.py  the socket's place, the code fingerprint, the framing (standard library only)
    client.py    hands a CLI command to a running engine, streams its output (standard library only)
    server.py    `unlearn-studio engine`: serves commands one at a time over a user-private Unix socket

Results are the same files and the same JSON as a one-shot command; only the start-up is saved.
"""
