"""hegelion-review: review a trace log in the browser (list, search, trace pages, labels, charts) on 127.0.0.1."""

from __future__ import annotations

import socket
import threading
import webbrowser
from pathlib import Path

import click

from ..curate.formats import PAIRS_CHOICES, REJECTED_CHOICES, Pairs, Rejected
from ..errors import ConfigError
from ..store import default_log_path
from ._common import prog, run

PROG = "hegelion-review"
HOST = "127.0.0.1"
DEFAULT_PORT = 8766


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.argument("log", required=False, type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--port", "-p", type=click.IntRange(0, 65535), default=DEFAULT_PORT, show_default=True, help="0: any free port."
)
@click.option("--open", "open_browser", is_flag=True, help="Open the app in the default browser.")
@click.option("--labeller", help="Your name, recorded with every label you make (the page can change it).")
@click.option(
    "--rejected",
    type=click.Choice(REJECTED_CHOICES),
    default="thesis",
    show_default=True,
    help="Which pairs to review: the synthesis against the thesis, the antithesis, or both.",
)
@click.option(
    "--pairs",
    type=click.Choice(PAIRS_CHOICES),
    default="first-last",
    show_default=True,
    help="Iterated traces: one pair (first thesis vs final synthesis) or one pair per round.",
)
@click.option("--min-chars", type=click.IntRange(min=0), default=0, help="Preview rows as an export with --min-chars.")
@click.option("--min-score", type=click.FloatRange(0, 1), default=None, help="Preview rows as with --min-score.")
@click.option("--reviewed-only", is_flag=True, help="Preview rows as an export with --reviewed-only.")
@click.option(
    "--allow-host",
    multiple=True,
    help="Another Host name to accept (e.g. behind a tunnel); loopback names are always accepted.",
)
def review(
    log: Path | None,
    port: int,
    open_browser: bool,
    labeller: str | None,
    rejected: Rejected,  # click.Choice has checked it
    pairs: Pairs,
    min_chars: int,
    min_score: float | None,
    reviewed_only: bool,
    allow_host: tuple[str, ...],
) -> int:
    """Serve the review app for LOG [default: the data folder's traces.jsonl] on http://127.0.0.1:PORT/.

    \b
    hegelion-review                                  # the data folder's log, port 8766
    hegelion-review data/traces.jsonl --open --labeller ann
    hegelion-review data/traces.jsonl --pairs rounds --rejected both --port 0

    Labels go to LOG.labels beside the log (the log itself is never written); hegelion-dataset honours them. The
    app keeps an index (a cache, safe to delete) in .LOG.index.sqlite beside the log.
    """
    import uvicorn

    from ..review import ReviewConfig, create_app
    from ..review.index import PairView, index_path

    log = log if log is not None else default_log_path()
    if not log.exists():
        raise ConfigError(f"there is no trace log at {str(log)!r}; run a dialectic first or give the log's path")
    config = ReviewConfig(
        log_path=log,
        view=PairView(rejected=rejected, pairs=pairs),
        min_chars=min_chars,
        min_score=min_score,
        reviewed_only=reviewed_only,
        labeller=labeller,
        allowed_hosts=allow_host,
    )
    app = create_app(config)
    sock = _listen(port)
    url = f"http://{HOST}:{sock.getsockname()[1]}/"
    lines = [
        f"serving {log} at {url} (Ctrl-C stops)",
        f"index {index_path(log)} (a cache beside the log; safe to delete)",
    ]

    class Announcing(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=sockets)  # the app's warm-up (its lifespan) first: then the URL
            for line in lines if not self.should_exit else []:
                click.echo(f"{prog()}: {line}", err=True)

    server = Announcing(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on"))
    if open_browser:
        threading.Timer(0.5, _open_browser, args=(url, prog())).start()
    server.run(sockets=[sock])
    return 0


def _listen(port: int) -> socket.socket:
    """A socket listening on HOST:``port``; connections made from then on wait for the server."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((HOST, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {HOST}:{port} ({exc.strerror}); pass another --port (0: any)") from None
    sock.listen(1024)
    return sock


def _open_browser(url: str, prefix: str) -> None:
    """Open ``url`` in the default browser, or say that none opened (a server, ssh, no display) and where to go."""
    try:
        opened = webbrowser.open(url)
    except webbrowser.Error:
        opened = False
    if not opened:
        click.echo(f"{prefix}: no browser opened; open {url} yourself", err=True)


def main(argv: list[str] | None = None) -> None:
    run(review, PROG, argv)


if __name__ == "__main__":
    main()
