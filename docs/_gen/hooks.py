"""MkDocs hooks: pages generated from the code at build time, so they cannot drift from it.

- ``reference/cli.md``: every command of the typer app with its usage, help and options.
- ``protocols.md``: ``dabench ls protocols --markdown`` (every suite × dataset protocol with its source).
"""
from __future__ import annotations

from mkdocs.structure.files import File


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _is_group(cmd) -> bool:
    return hasattr(cmd, "list_commands")  # typer vendors click: no isinstance against click's classes


def _command_markdown(cmd, path: list[str], out: list[str]) -> None:
    name = " ".join(path)
    depth = min(len(path) + 1, 4)
    out.append(f"{'#' * depth} `{name}`\n")
    help_text = (cmd.help or "").strip()
    if help_text:
        out.append(help_text.replace("\n\n", "\n\n").strip() + "\n")
    if _is_group(cmd):
        ctx = cmd.context_class(cmd, info_name=name)
        subs = cmd.list_commands(ctx)
        out.append("| command | what it does |\n|---|---|")
        for sub in subs:
            c = cmd.get_command(ctx, sub)
            out.append(f"| [`{name} {sub}`](#{'-'.join([*path, sub]).lower()}) | {_escape(c.get_short_help_str(200))} |")
        out.append("")
        for sub in subs:
            _command_markdown(cmd.get_command(ctx, sub), [*path, sub], out)
        return
    ctx = cmd.context_class(cmd, info_name=name)
    out.append(f"```text\n{cmd.get_usage(ctx).strip()}\n```\n")
    rows = []
    for p in cmd.params:
        if p.param_type_name == "option":
            if p.hidden:
                continue
            flags = ", ".join(f"`{o}`" for o in [*p.opts, *p.secondary_opts])
            default = "" if p.default in (None, False, (), []) or callable(p.default) else f"`{p.default}`"
            rows.append(f"| {flags} | {_escape(p.help or '')} | {default} |")
        elif p.param_type_name == "argument":
            rows.append(f"| `{p.name.upper()}` | {'required' if p.required else 'optional'} argument | |")
    if rows:
        out.append("| option | meaning | default |\n|---|---|---|")
        out.extend(rows)
        out.append("")


def cli_reference() -> str:
    import typer.main

    from dabench.cli import app

    root = typer.main.get_command(app)
    out = ["# CLI reference\n", "Generated from the typer app at build time (`docs/_gen/hooks.py`): every command, "
           "its usage and its options. `dabench COMMAND --help` prints the same.\n"]
    _command_markdown(root, ["dabench"], out)
    return "\n".join(out) + "\n"


def protocols_page() -> str:
    from dabench.eval.protocol_table import protocol_markdown, protocol_rows

    return ("# Protocols\n\nEvery suite × dataset protocol dabench runs, with the source it follows. Generated "
            "at build time from `dabench ls protocols --markdown`; the suites themselves are YAML files in "
            "`dabench/configs/suites/` (see [Evaluate](evaluate.md)).\n\n" + protocol_markdown(protocol_rows(None)))


def on_files(files, config):
    for uri, content in (("reference/cli.md", cli_reference()), ("protocols.md", protocols_page())):
        files.append(File.generated(config, uri, content=content))
    return files
