"""``python -m recipes.preference_study <command> ...``: dispatch to the study's commands."""

from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "prepare": ("prepare", "generate the paired clips (raw vs enhanced) into a study bundle"),
    "invite": ("invite", "create rater links (one unguessable token each)"),
    "serve": ("server", "serve the blind listening test (Flask + waitress + SQLite)"),
    "export": ("export", "write the stored answers as a CSV"),
    "crowd-export": ("crowd", "CSV of rater links + MTurk task template"),
    "analyse": ("analyse", "statistics and plots from the answers CSV"),
}


def _usage() -> str:
    lines = ["usage: python -m recipes.preference_study <command> [options]", "",
             "Blind preference study of generator output with and without enhancement.", "",
             "commands:"]
    lines += [f"  {name:<13} {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "Run `python -m recipes.preference_study <command> --help` for its options; "
                  "see recipes/preference_study/README.md for the workflow."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Dispatch ``argv[0]`` to its module's ``main``. Returns an exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"error: unknown command {command!r}.\n\n{_usage()}", file=sys.stderr)
        return 2
    module_name = f"{__package__ or 'recipes.preference_study'}.{COMMANDS[command][0]}"
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        print(f"error: the {command!r} command is not available in this checkout "
              f"({module_name} is missing).", file=sys.stderr)
        return 2
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
