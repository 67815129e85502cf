"""Start Unlearn Studio: the `unlearn-studio` console script and `python launch.py`.

core never imports the GUI, so the GUI plugs itself in here: every `unlearn-studio` command runs
through core.cli, and this module hands it the `studio` command. Start-up printing lives here
only: the typed options as JSON, then warnings, then where the studio runs.

    python -m gui.launcher studio [--host 127.0.0.1] [--port 7860] [--model M] ...
"""

from __future__ import annotations

import json
import os
import sys

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def main(argv: list[str] | None = None) -> int:
    from core.cli import run

    return run(argv, commands={"studio": run_studio})


def run_studio(args) -> int:
    """The `studio` command: argparse flags -> typed StudioOptions (core) -> serve."""
    from core.cli import studio_options

    return serve(studio_options(args))


def _log(message: str) -> None:
    print(message, file=sys.stderr)


def serve(options) -> int:
    """Load the model, build the page, serve it until Ctrl+C. Returns the exit status."""
    data_dir = options.data_dir.resolve()
    (data_dir / "tmp").mkdir(parents=True, exist_ok=True)
    os.environ["GRADIO_TEMP_DIR"] = str(data_dir / "tmp")
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
    if options.load.offline:
        os.environ["HF_HUB_OFFLINE"] = "1"

    from core.studio import Studio

    from .app import build_app, launch_kwargs

    _log("unlearn-studio studio " + json.dumps(options.describe()))
    _log(f"loading model {options.model!r} (device {options.load.device}, dtype {options.load.dtype})...")
    studio = Studio.open(options.model, options.load, data_dir)
    for err in studio.restore_errors:
        _log(f"warning: earlier fix not loaded: {err}")
    if options.host not in LOOPBACK:
        _log(f"warning: serving on {options.host}: anyone who can reach this address can use the studio "
             "and your GPU (there is no login)")
    if options.share:
        _log("warning: --share asks Gradio for a public link: anyone with the link can use the studio")
    from .server_guard import allowed_hosts

    hosts = allowed_hosts(options.host, tuple(options.allow_hosts), options.share)
    demo = build_app(studio)
    _, local_url, share_url = demo.launch(server_name=options.host, server_port=options.port, share=options.share,
                                          inbrowser=options.open_browser, prevent_thread_lock=True,
                                          **launch_kwargs(studio, hosts))
    print(f"Unlearn Studio running at {local_url}" + (f" (public: {share_url})" if share_url else ""))
    print(f"accepting requests for hosts {', '.join(hosts)} on port {options.port}, from the studio's own page "
          "only (other hosts, ports and origins are refused; add names with --allow-host)")
    print(f"model {studio.model.info.name} on {studio.model.device}; data in {data_dir}; Ctrl+C to stop")
    sys.stdout.flush()
    try:
        demo.block_thread()
    except KeyboardInterrupt:
        pass
    finally:
        demo.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
