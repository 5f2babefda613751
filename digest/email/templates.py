"""The Jinja environment of the digest email's HTML part, with digest.css inlined once.

CSS is inlined when the HTML templates load, not per email: the loader runs
css-inline over the template *source*. For that the HTML templates use Jinja
statement delimiters that are HTML comments (`<!--{% for ... %}-->`), so the
source is valid HTML that the inliner parses and serialises without moving
the template logic around; a check refuses a template whose Jinja code the
inliner changed. @-rules (media queries, dark mode) cannot be inlined and stay
in a `<style>` block.

The HTML comes out in ASCII: the templates' own characters outside ASCII are
written as character references when they load, and what an expression outputs
is as it renders (`ascii_markup`), so the message's 7bit HTML part is the page.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import css_inline
from jinja2 import BaseLoader, Environment, StrictUndefined, TemplateNotFound
from jinja2.loaders import split_template_path
from markupsafe import Markup, escape

from digest.errors import ConfigError

CSS_FILE = "digest.css"
_JINJA_CODE = re.compile(r"\{\{.*?\}\}|<!--\{[%#].*?[%#]\}-->", re.DOTALL)
_CSS_COMMENT = re.compile(r"/\*.*?\*/", re.DOTALL)


def split_at_rules(css: str) -> tuple[str, str]:
    """(plain rules, @-rules): the first are inlined, the second stay in a <style> block."""
    css = _CSS_COMMENT.sub("", css)
    plain: list[str] = []
    at_rules: list[str] = []
    position = 0
    while True:
        start = css.find("@", position)
        if start == -1:
            plain.append(css[position:])
            break
        plain.append(css[position:start])
        depth = 0
        end = start
        for end in range(css.index("{", start), len(css)):
            if css[end] == "{":
                depth += 1
            elif css[end] == "}":
                depth -= 1
                if depth == 0:
                    break
        at_rules.append(" ".join(css[start : end + 1].split()))
        position = end + 1
    return "".join(plain), "\n".join(at_rules)


def _with_style(source: str, css: str) -> str:
    return source.replace("</head>", f"<style>\n{css}\n</style>\n</head>", 1)


def _css_inlined(source: str, css: str, *, name: str, fragment: bool) -> str:
    plain, at_rules = split_at_rules(css)
    if fragment:
        result = css_inline.inline_fragment(source, plain, load_remote_stylesheets=False)
    else:
        inliner = css_inline.CSSInliner(extra_css=plain, load_remote_stylesheets=False)
        result = _with_style(inliner.inline(source), at_rules)
    if _JINJA_CODE.findall(result) != _JINJA_CODE.findall(source):
        raise ConfigError(
            f"templates/{name}: CSS inlining changed the template code; keep quotes, <, > "
            "and & out of {{ expressions }} and write every <tbody>"
        )
    return result


class _InliningLoader(BaseLoader):
    """Loads templates from a folder; HTML ones come back with digest.css inlined.

    With `inline=False` the CSS goes into a `<style>` element instead, as a
    client-side stylesheet: the naive pipeline `bench/render.py` compares with.
    """

    def __init__(self, folder: Path, *, inline: bool = True) -> None:
        self.folder = folder
        self.inline = inline
        try:
            self.css = (folder / CSS_FILE).read_text("utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read {folder / CSS_FILE}: {exc.strerror}") from None

    def get_source(
        self, environment: Environment, template: str
    ) -> tuple[str, str, Callable[[], bool]]:
        path = self.folder.joinpath(*split_template_path(template))
        try:
            source = path.read_text("utf-8")
        except OSError:
            raise TemplateNotFound(template) from None
        if template.endswith(".html.j2"):
            fragment = template.startswith("partials/")
            if self.inline:
                source = _css_inlined(source, self.css, name=template, fragment=fragment)
            elif not fragment:
                source = _with_style(source, self.css)
            source = _ascii_outside_code(source, name=template)
        return source, str(path), lambda: True


# What keeps its characters as written: Jinja code, and the raw text of style and
# script elements (where a character reference is not read).
_KEEP = re.compile(
    r"\{\{.*?\}\}|<!--\{[%#].*?[%#]\}-->|<(style|script)\b.*?</\1", re.DOTALL | re.IGNORECASE
)
# C1 controls: HTML reads their references as Windows-1252 characters (&#128; is €).
_C1 = re.compile("[\x80-\x9f]")


def _references(text: str) -> str:
    """`text` (markup or escaped text) with every character outside ASCII written as
    a character reference, which a browser reads as the character; unchanged if it
    holds a C1 control, whose reference would be read as another character."""
    if text.isascii() or _C1.search(text):
        return text
    return text.encode("ascii", "xmlcharrefreplace").decode("ascii")


def _ascii_outside_code(source: str, *, name: str) -> str:
    """A template's markup in ASCII (see `ascii_markup`), its Jinja code as written.

    An expression inside a style or script element is refused: its output would be
    written with character references there too, which CSS and scripts read as they
    are written, and the page, all ASCII, would go as 7bit with them.
    """
    pieces: list[str] = []
    position = 0
    for kept in _KEEP.finditer(source):
        if kept.group(1) and "{{" in kept.group():
            raise ConfigError(
                f"templates/{name}: an expression inside <{kept.group(1)}> would be "
                "written with character references there, which it does not read; keep "
                "{{ }} out of style and script elements"
            )
        pieces += (_references(source[position : kept.start()]), kept.group())
        position = kept.end()
    pieces.append(_references(source[position:]))
    return "".join(pieces)


def ascii_markup(value: object) -> object:
    """The HTML environment's `finalize`: what an expression outputs, escaped, with
    every character outside ASCII written as a character reference.

    The message's HTML part goes as 7bit, which needs ASCII (digest.email.mime):
    made so here, a value at a time (a card's fragments once per run, as they are
    cached), the whole page is ASCII and the MIME writer only copies it, where
    converting each finished page cost more than the base64 it replaces.
    """
    if not isinstance(value, str) or value.isascii():
        return value
    return Markup(_references(escape(value)))


def html_environment(folder: Path, *, inline: bool) -> Environment:
    return Environment(
        loader=_InliningLoader(folder, inline=inline),
        autoescape=True,
        block_start_string="<!--{%",
        block_end_string="%}-->",
        comment_start_string="<!--{#",
        comment_end_string="#}-->",
        trim_blocks=True,
        keep_trailing_newline=True,
        auto_reload=False,
        undefined=StrictUndefined,
        finalize=ascii_markup,
    )


__all__ = ["ascii_markup", "html_environment", "split_at_rules"]
