"""``resmlp-fairseq``: fairseq's own command-line tools with this plugin loaded, so ``--user-dir`` cannot be forgotten.

    resmlp-fairseq train DATA --arch resmlp_tiny ...          # = fairseq-train DATA --user-dir <plugin> ...
    resmlp-fairseq generate DATA --path checkpoint_best.pt ...
    resmlp-fairseq interactive | validate | preprocess | score ...
    resmlp-fairseq hydra-train --config-name synthetic_tiny task.data=$PWD/data-bin/synthetic
    resmlp-fairseq user-dir                                   # the plugin folder, for fairseq's own tools
    resmlp-fairseq recipe-dir                                 # the shipped recipes, for --config-dir

Every argument after the command goes to the fairseq tool unchanged, which runs in this process exactly as its
``fairseq-*`` script would run it. The launcher only adds ``--user-dir`` (the installed plugin) when it is not given,
and for ``hydra-train`` ``common.user_dir=...`` and, without ``--config-dir``, the folder of the shipped recipes, so
they are found from any working directory. Checkpoints record the plugin folder in ``cfg.common.user_dir``, as with
``--user-dir``.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys

from .user_dir import plugin_dir, recipes_dir

# command -> fairseq_cli module; the value says whether the tool builds a model (and so needs the plugin).
TOOLS = {
    "train": ("fairseq_cli.train", True),
    "generate": ("fairseq_cli.generate", True),
    "interactive": ("fairseq_cli.interactive", True),
    "validate": ("fairseq_cli.validate", True),
    "hydra-train": ("fairseq_cli.hydra_train", True),
    "preprocess": ("fairseq_cli.preprocess", False),
    "score": ("fairseq_cli.score", False),
}


class LauncherError(Exception):
    """A command-line mistake: printed as one line, exit status 2."""


def _option_value(args: list[str], *names: str) -> str | None:
    """The value of ``--name value`` or ``--name=value`` in ``args`` (the last one wins, as in argparse)."""
    value = None
    for index, arg in enumerate(args):
        for name in names:
            if arg == name and index + 1 < len(args):
                value = args[index + 1]
            elif arg.startswith(name + "="):
                value = arg[len(name) + 1 :]
    return value


def _check_user_dir(user_dir: str, tool: str) -> None:
    """Refuse a ``--user-dir`` that is another copy of this plugin: fairseq would import the first one it sees."""
    given = os.path.realpath(user_dir)
    if os.path.basename(given) == "seq2seq" and given != os.path.realpath(plugin_dir()):
        raise LauncherError(
            f"--user-dir {user_dir} is another copy of the seq2seq plugin, but resmlp-fairseq loads the installed "
            f"one ({plugin_dir()}); drop --user-dir, or run fairseq-{tool} --user-dir {user_dir} to use that copy"
        )


def with_plugin(command: str, args: list[str]) -> list[str]:
    """``args`` for the fairseq tool of ``command``, with the plugin (and, for hydra-train, the recipes) added."""
    _, needs_plugin = TOOLS[command]
    if not needs_plugin:
        return list(args)
    if command == "hydra-train":
        overrides = [a for a in args if a.startswith("common.user_dir=")]
        for override in overrides:
            _check_user_dir(override.split("=", 1)[1], command)
        # Options first, overrides last: hydra's parser takes the overrides as one trailing positional list.
        options = [] if _option_value(args, "--config-dir", "-cd") is not None else ["--config-dir", recipes_dir()]
        return [*options, *args, *([] if overrides else [f"common.user_dir={plugin_dir()}"])]
    user_dir = _option_value(args, "--user-dir")
    if user_dir is not None:
        _check_user_dir(user_dir, command)
        return list(args)
    return ["--user-dir", plugin_dir(), *args]


def usage() -> str:
    recipes = sorted(name.removesuffix(".yaml") for name in os.listdir(recipes_dir()) if name.endswith(".yaml"))
    return (
        (__doc__ or "").split("\n\n")[1]
        + f"\ncommands: {', '.join(TOOLS)}, user-dir, recipe-dir\nrecipes (hydra-train --config-name): "
        + ", ".join(recipes)
    )


def main(argv: list[str] | None = None) -> int:
    """Run ``resmlp-fairseq``; returns the exit status (fairseq's own tools raise or call ``sys.exit``)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    command, args = argv[0], argv[1:]
    try:
        if command == "user-dir":
            print(plugin_dir())
            return 0
        if command == "recipe-dir":
            print(recipes_dir())
            return 0
        if command not in TOOLS:
            raise LauncherError(
                f"unknown command {command!r}; choose one of {', '.join(TOOLS)}, user-dir, recipe-dir "
                "(resmlp-fairseq --help)"
            )
        tool_args = with_plugin(command, args)
    except LauncherError as error:
        print(f"resmlp-fairseq: error: {error}", file=sys.stderr)
        return 2
    module = _import_tool(TOOLS[command][0])
    # The plugin is imported already (this module is part of it); fairseq's --user-dir import sees the same folder
    # in sys.modules and only logs "has already been imported".
    sys.argv = [f"fairseq-{command}", *tool_args]
    module.cli_main()
    return 0


def _import_tool(name: str):
    """Import a fairseq_cli module with logging as its ``fairseq-*`` script would have it.

    A script imports its tool module first, and most of them configure the root logger right there (format, level,
    stdout) "before importing any fairseq libraries". Here fairseq was imported with the plugin, which already
    configured it, so the tool's set-up would be ignored: the handlers from that import step aside while the tool
    module is imported, and come back only if the tool sets none itself (as fairseq-generate, whose logging then
    stays as fairseq's import left it, exactly as with its script).
    """
    root = logging.getLogger()
    earlier, level = list(root.handlers), root.level
    for handler in earlier:
        root.removeHandler(handler)
    module = importlib.import_module(name)
    if not root.handlers:
        for handler in earlier:
            root.addHandler(handler)
        root.setLevel(level)
    return module


if __name__ == "__main__":
    sys.exit(main())
