"""hegelion: one command for the whole job, as ``llm`` is one command (the old script names stay as aliases).

hegelion "Why is the sky blue?"            # run a dialectic (the default subcommand, = hegelion run)
hegelion dataset traces.jsonl dpo.jsonl     # curation (= hegelion-dataset)
hegelion logs / hegelion logs show ID       # read the trace log back
hegelion optimize ... / hegelion serve ...  # = hegelion-optimize / hegelion-server
hegelion review [LOG]                       # review and label the log in the browser (= hegelion-review)
hegelion train DATA --base M --out DIR      # a LoRA on exported rows -> DIR/model.gguf (needs .[train])
hegelion eval --model M --base M0 --suite S # measure a model against its base (report.json/.md/.svg)
"""

from __future__ import annotations

import shlex

import click

from .. import __version__
from ._common import run
from .agent import agent
from .dataset import dataset
from .eval import eval_command
from .logs import logs
from .optimize import optimize
from .review import review
from .serve import serve
from .train import train


def edit_distance(a: str, b: str) -> int:
    """Optimal-string-alignment distance: insertions, deletions, substitutions and swaps of neighbours cost 1 each
    (``reveiw`` is one step from ``review``)."""
    rows = [list(range(len(b) + 1))]
    for i, ca in enumerate(a, start=1):
        row = [i]
        for j, cb in enumerate(b, start=1):
            row.append(min(rows[-1][j] + 1, row[j - 1] + 1, rows[-1][j - 1] + (ca != cb)))
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                row[j] = min(row[j], rows[-2][j - 2] + 1)
        rows.append(row)
    return rows[-1][-1]


def near_command(word: str, commands: list[str]) -> str | None:
    """The subcommand ``word`` is most likely a typo of: one word within 2 edits of a command name (1 for names of 5
    letters or fewer, so short tasks such as ``go`` stay tasks), else None."""
    if not word.isalpha():
        return None
    scored = [(edit_distance(word.lower(), name), name) for name in commands if name != word]
    close = sorted((d, name) for d, name in scored if d <= min(2, max(1, len(name) // 3)))
    return close[0][1] if close else None


class _RunByDefault(click.Group):
    """A group whose first argument, when it is not a subcommand, starts ``run``: ``hegelion "task"``. A single word
    a typo away from a subcommand (``hegelion reveiw``) is refused with a suggestion instead of run as a task."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help", "--version"):
            meant = near_command(args[0], sorted(self.commands))
            if meant is not None:
                raise click.UsageError(
                    f"no such command {args[0]!r}; did you mean {meant}? To run it as a task: hegelion run "
                    f"{shlex.join(args)}",
                    ctx,
                )
            args = ["run", *args]
        return super().parse_args(ctx, args)


@click.group(
    cls=_RunByDefault,
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110},
)
@click.version_option(__version__, "--version", prog_name="hegelion")
def hegelion() -> None:
    """Make an LLM argue with itself (thesis -> antithesis -> synthesis), log every run, and turn the log into
    training data. `hegelion "TASK"` runs a dialectic; the subcommands below do the rest."""


hegelion.add_command(agent, "run")
hegelion.add_command(dataset, "dataset")
hegelion.add_command(eval_command, "eval")
hegelion.add_command(logs, "logs")
hegelion.add_command(optimize, "optimize")
hegelion.add_command(serve, "serve")
hegelion.add_command(review, "review")
hegelion.add_command(train, "train")


def main(argv: list[str] | None = None) -> None:
    run(hegelion, "hegelion", argv)


if __name__ == "__main__":
    main()
