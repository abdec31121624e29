"""Label and annotation templates: ``"count {value:.0f} below {min}"``.

Python ``str.format`` syntax with one restriction: a placeholder is a plain
name from the rule's known fields (no ``{x.attr}`` or ``{x[0]}``), checked when
the config is loaded so a typo is a config error, not a broken alert at 3 a.m.
None renders as ``n/a`` whatever the format spec.
"""

from __future__ import annotations

import string
from collections.abc import Iterable, Mapping
from typing import Any

_FORMATTER = string.Formatter()


class TemplateError(ValueError):
    """A template uses an unknown placeholder or a bad format spec."""


def placeholders(template: str) -> list[str]:
    """Names used in ``template``; raises TemplateError on malformed braces or attribute access."""
    try:
        parsed = list(_FORMATTER.parse(template))
    except ValueError as exc:
        raise TemplateError(f"malformed template {template!r}: {exc}") from None
    names = []
    for _literal, field, _spec, _conversion in parsed:
        if field is None:
            continue
        if not field.isidentifier():
            raise TemplateError(f"template {template!r}: placeholder {{{field}}} must be a plain name")
        names.append(field)
    return names


def check_template(template: str, allowed: Iterable[str], sample: Mapping[str, Any]) -> None:
    """Unknown names and format specs that fail on a sample value are TemplateErrors."""
    allowed_set = set(allowed)
    for name in placeholders(template):
        if name not in allowed_set:
            raise TemplateError(f"template {template!r}: unknown placeholder {{{name}}}; "
                                f"allowed: {', '.join(sorted(allowed_set))}")
    try:
        render(template, sample)
    except (ValueError, TypeError, KeyError) as exc:
        raise TemplateError(f"template {template!r} cannot be formatted: {exc}") from None


def render(template: str, values: Mapping[str, Any]) -> str:
    out = []
    for literal, field, spec, conversion in _FORMATTER.parse(template):
        out.append(literal)
        if field is None:
            continue
        value = values[field]
        if value is None:
            out.append("n/a")
            continue
        if conversion:
            value = _FORMATTER.convert_field(value, conversion)
        out.append(format(value, spec or ""))
    return "".join(out)


def render_safe(template: str, values: Mapping[str, Any]) -> str:
    """Render, or return the raw template if a runtime value does not fit the spec (never raises)."""
    try:
        return render(template, values)
    except (ValueError, TypeError, KeyError):
        return template
