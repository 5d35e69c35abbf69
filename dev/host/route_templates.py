"""Route templates in ASP.NET Core's syntax, as the Functions host parses, orders and matches them: literal
segments matched case-insensitively, parameters with constraints, defaults, optional and catch-all parameters,
complex segments (`{name}.{ext?}`), and the methods of the trigger as part of the match."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from dev.host.diagnostics import DevHostError
from dev.host.functions import Function
from dev.host.route_constraints import parse_constraint


@dataclass
class Param:
    """A `{parameter}` of a template; `group` names its group in the route's regular expression."""

    name: str
    group: str
    optional: bool = False
    catch_all: bool = False
    default: str | None = None
    checks: tuple[Callable[[str], bool], ...] = ()


def _closing_parenthesis(text: str) -> int:
    depth = 0
    for position, char in enumerate(text):
        depth += char == "("
        depth -= char == ")"
        if depth == 0:
            return position
    return -1


def _parse_parameter(text: str, group: str, template: str) -> Param:
    catch_all = text.startswith("*")
    body = text.lstrip("*")
    match = re.match(r"[^:=?]+", body)
    if not match:
        raise DevHostError(f"route {template!r}: empty parameter name")
    name, rest = match.group(0), body[match.end() :]
    checks: list[Callable[[str], bool]] = []
    optional = False
    default = None
    while rest:
        if rest[0] == ":":
            rest = rest[1:]
            constraint = re.match(r"[A-Za-z]+", rest)
            if not constraint:
                raise DevHostError(f"route {template!r}: malformed constraint in {{{text}}}")
            rest = rest[constraint.end() :]
            argument = None
            if rest.startswith("("):
                close = _closing_parenthesis(rest)
                if close < 0:
                    raise DevHostError(f"route {template!r}: unbalanced parentheses in {{{text}}}")
                argument, rest = rest[1:close], rest[close + 1 :]
            checks.append(parse_constraint(constraint.group(0), argument, template))
        elif rest[0] == "=":
            default, rest = rest[1:], ""
        elif rest == "?":
            optional, rest = True, ""
        else:
            raise DevHostError(f"route {template!r}: malformed parameter {{{text}}}")
    if optional and default is not None:
        raise DevHostError(f"route {template!r}: an optional parameter cannot have a default value")
    return Param(name, group, optional, catch_all, default, tuple(checks))


def _parse_segment(segment: str, template: str, counter: list[int]) -> list[str | Param]:
    parts: list[str | Param] = []
    literal = ""
    index = 0
    while index < len(segment):
        char = segment[index]
        pair = segment[index : index + 2]
        if pair in ("{{", "}}"):
            literal += char
            index += 2
        elif char == "{":
            end, text = index + 1, ""
            while end < len(segment):
                if segment[end : end + 2] in ("{{", "}}"):
                    text += segment[end]
                    end += 2
                elif segment[end] == "}":
                    break
                else:
                    text += segment[end]
                    end += 1
            else:
                raise DevHostError(f"route {template!r}: unclosed '{{'")
            if literal:
                parts.append(literal)
                literal = ""
            counter[0] += 1
            parts.append(_parse_parameter(text, f"p{counter[0]}", template))
            index = end + 1
        elif char == "}":
            raise DevHostError(f"route {template!r}: unmatched '}}'")
        else:
            literal += char
            index += 1
    if literal:
        parts.append(literal)
    return parts


@dataclass
class Route:
    """A compiled template: its segments, parameters and the regular expression that matches a path."""

    function: Function
    template: str  # with the route prefix
    methods: frozenset[str] | None  # None: every method
    segments: list[list[str | Param]] = field(default_factory=list)
    params: list[Param] = field(default_factory=list)
    regex: re.Pattern[str] | None = None

    @classmethod
    def compile(cls, function: Function, template: str, methods: frozenset[str] | None) -> Route:
        route = cls(function, template, methods)
        counter = [0]
        text = template.strip("/")
        route.segments = [_parse_segment(segment, template, counter) for segment in text.split("/")] if text else []
        pattern, closers = "^", 0
        for position, parts in enumerate(route.segments):
            if not parts:
                raise DevHostError(f"route {template!r}: empty segment")
            params = [part for part in parts if isinstance(part, Param)]
            route.params.extend(params)
            if any(param.catch_all for param in params) and (position != len(route.segments) - 1 or len(parts) != 1):
                raise DevHostError(f"route {template!r}: a catch-all parameter must be the whole last segment")
            single = parts[0] if len(parts) == 1 and isinstance(parts[0], Param) else None
            if single is not None and (single.optional or single.catch_all or single.default is not None):
                value = ".*" if single.catch_all else "[^/]+"
                pattern += f"(?:/(?P<{single.group}>{value})"
                closers += 1
                continue
            if closers:
                raise DevHostError(f"route {template!r}: optional parameters must come last")
            pattern += "/" + cls._complex(parts, template)
        route.regex = re.compile(pattern + ")?" * closers + "/?$", re.IGNORECASE)
        return route

    @staticmethod
    def _complex(parts: list[str | Param], template: str) -> str:
        out: list[str] = []
        for index, part in enumerate(parts):
            if isinstance(part, str):
                out.append(re.escape(part))
                continue
            if part.catch_all:
                raise DevHostError(f"route {template!r}: catch-all inside a complex segment")
            group = f"(?P<{part.group}>[^/]+)"
            if part.optional:
                # `{name}.{ext?}`: the literal before a trailing optional parameter is optional too.
                if index != len(parts) - 1 or index == 0 or not isinstance(parts[index - 1], str):
                    raise DevHostError(f"route {template!r}: optional parameter inside a segment must come last")
                out[-1] = f"(?:{out[-1]}{group})?"
            else:
                out.append(group)
        return "".join(out)

    def match(self, path: str, method: str) -> dict[str, str] | None:
        assert self.regex is not None
        found = self.regex.match(path)
        if not found:
            return None
        values: dict[str, str] = {}
        for param in self.params:
            value = found.group(param.group)
            if value is None or (param.catch_all and value == ""):
                if param.default is None:
                    continue  # absent optional parameters are not passed to the worker
                value = param.default
            if not all(check(value) for check in param.checks):
                return None
            values[param.name] = value
        # The host maps the trigger's methods to an HttpMethodRouteConstraint: a method that does not
        # match makes the route not match, so the next route is tried and the final answer is 404.
        if self.methods is not None and method not in self.methods:
            return None
        return values


def _compare_routes(x: Route, y: Route) -> int:
    """WebJobsRouteBuilder.RouteComparison: the order the Functions host tries its routes in."""
    for index, x_parts in enumerate(x.segments):
        if len(y.segments) <= index:
            return -1
        xp, yp = x_parts[0], y.segments[index][0]
        x_param, y_param = isinstance(xp, Param), isinstance(yp, Param)
        if not x_param and y_param:
            return -1
        if x_param and not y_param:
            return 1
        if isinstance(xp, Param) and isinstance(yp, Param):
            if len(xp.checks) != len(yp.checks):
                return -1 if len(xp.checks) > len(yp.checks) else 1
        elif isinstance(xp, str) and isinstance(yp, str):
            a, b = xp.upper(), yp.upper()  # OrdinalIgnoreCase
            if a != b:
                return -1 if a < b else 1
    return 1 if len(y.segments) > len(x.segments) else 0


def routes(functions: Iterable[Function], prefix: str) -> list[Route]:
    """The routes of the enabled HTTP functions under the route prefix, in the order the host tries them."""
    compiled = [
        Route.compile(function, template(function, prefix), function.methods)
        for function in functions
        if function.is_http and not function.disabled
    ]
    return sorted(compiled, key=functools.cmp_to_key(_compare_routes))


def template(function: Function, prefix: str) -> str:
    return f"{prefix}/{function.route.lstrip('/')}" if prefix else function.route
