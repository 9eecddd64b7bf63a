"""The one way CityStat reads an analyst's YAML file (metrics, contracts, experiments, alerts).

`read_yaml(path)` returns the parsed document as ruamel round-trip nodes, which remember the
line of every key and item; anything wrong is raised as `YamlFileError`, a list of `Problem`s
that each name the file, the line and (when known) the entry, so the person who made the
mistake can find it:

- syntax (tab indentation, an unclosed quote or bracket), duplicate keys, bytes that are not
  UTF-8 - each with its line (an impossible date such as 2025-02-30 stays text, so the model
  reports it at its line);
- an empty file or a top level that is not a mapping (line 1);
- resource limits: a file larger than `MAX_FILE_BYTES`, or YAML aliases that expand to more
  than `MAX_EXPANDED_VALUES` values ("billion laughs"), fail fast with a clear message.

`validation_problems` turns a pydantic `ValidationError` into problems at the line of the
deepest node each error names, with "did you mean" for a misspelt key.
"""

from __future__ import annotations

import difflib
import re
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from pydantic import BaseModel, ValidationError
import yaml as pyyaml
from ruamel.yaml import YAML
from ruamel.yaml import nodes as ruamel_nodes
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.constructor import RoundTripConstructor
from ruamel.yaml.error import MarkedYAMLError

MAX_FILE_BYTES = 1_000_000  # a city's registry is tens of KB (about 1 KB a metric); parsing keeps
# every line's position, about a millisecond a line, so the limit also bounds the time to load
MAX_EXPANDED_VALUES = 500_000  # values after expanding aliases (a metric has about 20)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a YAML file or what it declares, located as precisely as we can."""

    file: str
    line: int | None
    entry: str | None  # "metric pothole_on_time", "source permits", "rule lead_followup", ...
    message: str
    severity: str = "error"  # error | warning

    def __str__(self) -> str:
        where = self.file + (f":{self.line}" if self.line else "")
        who = f" [{self.entry}]" if self.entry else ""
        return f"{where}{who}: {self.message}"

    @property
    def entry_id(self) -> str | None:
        """The id part of `entry` ("metric x" -> "x")."""
        if not self.entry:
            return None
        return self.entry.split(" ", 1)[-1]


class YamlFileError(Exception):
    """A YAML file cannot be used; `problems` says where and why."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class _Constructor(RoundTripConstructor):
    """Round-trip constructor that keeps an impossible date (2025-02-30) as its text, so the
    model's date check reports it at its line and only the entry holding it is left out."""

    def construct_yaml_timestamp(self, node: Any, values: Any = None) -> Any:
        try:
            return super().construct_yaml_timestamp(node, values)
        except ValueError:
            return str(node.value)


_Constructor.add_constructor("tag:yaml.org,2002:timestamp", _Constructor.construct_yaml_timestamp)


def round_trip_yaml() -> YAML:
    """A ruamel round-trip parser with the impossible-date check (callers may tune dumping)."""
    yaml = YAML(typ="rt")
    yaml.Constructor = _Constructor
    return yaml


def read_text(path: str | Path, *, max_bytes: int = MAX_FILE_BYTES) -> str:
    """A YAML (or SQL) file's text; size, encoding and read errors name the file (and line)."""
    path = Path(path)
    file = str(path)
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise YamlFileError([Problem(file, None, None,
                                         f"the file is {size / 1e6:.1f} MB, more than the {max_bytes / 1e6:g} MB "
                                         "limit: split it or remove what does not belong")])
        data = path.read_bytes()
    except OSError as exc:
        raise YamlFileError([Problem(file, None, None, f"cannot read file: {exc.strerror or exc}")]) from None
    return decode(data, file)


def decode(data: bytes, file: str) -> str:
    """UTF-8 text (a leading byte-order mark is dropped); other bytes name the line they are on."""
    try:
        return data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise YamlFileError([Problem(file, line, None,
                                     f"not UTF-8: byte 0x{data[exc.start]:02x} cannot be read; save the file "
                                     "as UTF-8 (it looks like Latin-1 or Windows-1252)")]) from None


class _SyntaxOnlyLoader(pyyaml.CSafeLoader if pyyaml.__with_libyaml__ else pyyaml.SafeLoader):
    """libyaml's C parser and composer, leaving every implicit tag to ruamel's YAML 1.2 resolver.

    PyYAML resolves plain scalars by YAML 1.1 (`yes` and `on` are booleans, `010` is octal);
    ruamel, which reads CityStat's files, by YAML 1.2. This loader only marks which scalars
    carried no tag (and how they were written), so `_ruamel_node` can resolve them as ruamel does.
    """

    def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
        if kind is pyyaml.ScalarNode:
            return f"{_IMPLICIT}{int(bool(implicit[0]))}{int(bool(implicit[1]))}"
        return _IMPLICIT


_IMPLICIT = "\0implicit:"


class _NotFast(Exception):
    """The document uses something the fast path leaves to ruamel (aliases, tags, directives)."""


def _ruamel_node(node: Any, resolver: Any, seen: set[int]) -> Any:
    """A PyYAML node tree as the ruamel node tree ruamel's own composer would have made."""
    if id(node) in seen:  # an alias: ruamel's path checks the expansion and keeps the anchor
        raise _NotFast
    seen.add(id(node))
    tag = node.tag
    if not tag.startswith(_IMPLICIT):  # an explicit tag (`!!str 5`): ruamel keeps it on the value
        raise _NotFast
    if isinstance(node, pyyaml.ScalarNode):
        if tag.startswith(_IMPLICIT):
            tag = resolver.resolve(ruamel_nodes.ScalarNode, node.value,
                                   (tag[-2] == "1", tag[-1] == "1"))
        return ruamel_nodes.ScalarNode(tag, node.value, node.start_mark, node.end_mark, style=node.style)
    if isinstance(node, pyyaml.SequenceNode):
        if tag == _IMPLICIT:
            tag = resolver.resolve(ruamel_nodes.SequenceNode, None, (True, False))
        return ruamel_nodes.SequenceNode(tag, [_ruamel_node(item, resolver, seen) for item in node.value],
                                         node.start_mark, node.end_mark, flow_style=node.flow_style)
    if tag == _IMPLICIT:
        tag = resolver.resolve(ruamel_nodes.MappingNode, None, (True, False))
    return ruamel_nodes.MappingNode(tag, [(_ruamel_node(k, resolver, seen), _ruamel_node(v, resolver, seen))
                                          for k, v in node.value],
                                    node.start_mark, node.end_mark, flow_style=node.flow_style)


def _fast_load(text: str, yaml: YAML) -> Any:
    """The document ruamel's round-trip load gives (same types, lines and duplicate-key check),
    parsed by libyaml's C parser, ~25x faster than ruamel's pure-Python one (~5 ms instead of
    ~130 ms for the sample registry; the refresh and every app start read it).

    Raises `_NotFast` where ruamel must read the text itself: a syntax error (so the message is
    ruamel's, with its line), aliases, explicit tags, a `%YAML` directive. Comments are not
    kept (nothing writes these documents back).
    """
    if not pyyaml.__with_libyaml__ or text.lstrip().startswith("%"):
        raise _NotFast
    try:
        node = pyyaml.compose(text, Loader=_SyntaxOnlyLoader)
    except (pyyaml.YAMLError, ValueError, RecursionError):
        raise _NotFast from None
    if node is None:
        return None
    converted = _ruamel_node(node, yaml.resolver, set())
    return yaml.constructor.construct_document(converted)


def parse_yaml(text: str, file: str, *, yaml: YAML | None = None) -> Any:
    """Parse YAML text into round-trip nodes, or raise YamlFileError with the line."""
    yaml = yaml or round_trip_yaml()
    try:
        try:
            doc = _fast_load(text, yaml)
        except _NotFast:
            yaml = round_trip_yaml()
            doc = yaml.load(text)
    except MarkedYAMLError as exc:
        problem = exc.problem or exc.context or "cannot be read"
        context = exc.context or ""
        if "found character '\\t'" in problem:
            problem = "a tab character where YAML expects spaces (indent with spaces, not tabs)"
        if exc.context_mark and exc.problem_mark and ("flow" in context or "quoted" in context):
            # an unclosed bracket or quote: name the line where it was opened
            line = exc.context_mark.line + 1
            message = (f"YAML syntax: {context.removeprefix('while ')} opened here is not closed "
                       f"({problem} at line {exc.problem_mark.line + 1})")
        else:
            mark = exc.problem_mark or exc.context_mark
            line = mark.line + 1 if mark else None
            message = f"YAML syntax: {problem}"
            if context and exc.context_mark and exc.problem_mark and exc.context_mark.line != exc.problem_mark.line:
                message += f" ({context} at line {exc.context_mark.line + 1})"
        raise YamlFileError([Problem(file, line, None, message)]) from None
    except RecursionError:
        raise YamlFileError([Problem(file, None, None, "YAML nested too deeply")]) from None
    except Exception as exc:  # ruamel raises several unrelated types for broken input
        raise YamlFileError([Problem(file, None, None, f"cannot parse YAML: {exc}")]) from None
    check_expansion(doc, file, line=_first_alias_line(text))
    return doc


def read_yaml(path: str | Path, *, empty: Any = None, top_level: str = "a mapping") -> Any:
    """Read, decode and parse a YAML file whose top level must be a mapping.

    An empty file gives `empty` when that is not None, else a problem at line 1.
    """
    file = str(path)
    return mapping_document(parse_yaml(read_text(path), file), file, empty=empty, top_level=top_level)


def mapping_document(doc: Any, file: str, *, empty: Any = None, top_level: str = "a mapping") -> Any:
    """`doc` when it is a mapping; an empty document gives `empty` (or a problem at line 1)."""
    if doc is None and empty is not None:
        return empty
    if doc is None:
        raise YamlFileError([Problem(file, 1, None, f"the file is empty: it must be {top_level}")])
    if not isinstance(doc, CommentedMap):
        kind = "a list" if isinstance(doc, CommentedSeq) else "a single value"
        raise YamlFileError([Problem(file, 1, None, f"the top level is {kind}: it must be {top_level}")])
    return doc


# ---- nodes and lines ---------------------------------------------------------------------------

def line_of(node: Any, key: Any) -> int | None:
    """1-based line of `node[key]` in the YAML, if ruamel recorded it."""
    try:
        if isinstance(node, CommentedMap):
            return node.lc.key(key)[0] + 1
        if isinstance(node, CommentedSeq):
            return node.lc.item(key)[0] + 1
    except (KeyError, IndexError, TypeError, AttributeError):
        return None
    return None


def node_line(node: Any) -> int | None:
    """1-based line where a mapping or list starts."""
    lc = getattr(node, "lc", None)
    return lc.line + 1 if lc is not None and lc.line is not None else None


def line_for_loc(node: Any, loc: Iterable[Any]) -> int | None:
    """Walk a pydantic error location down the YAML tree, returning the deepest known line."""
    line = node_line(node)
    for key in loc:
        if isinstance(node, (CommentedMap, CommentedSeq)):
            try:
                child = node[key]
            except (KeyError, IndexError, TypeError):
                break
            line = line_of(node, key) or line
            node = child
        else:
            break
    return line


def plain(node: Any) -> Any:
    """Round-trip containers to plain dicts and lists (pydantic is stricter with plain types).

    Aliases are expanded here; `parse_yaml` has already checked that the expansion is bounded.
    """
    if isinstance(node, dict):
        return {str(k): plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [plain(v) for v in node]
    return node


def count_values(node: Any, limit: int = MAX_EXPANDED_VALUES) -> int:
    """How many values `node` holds once aliases are expanded (stops counting past `limit`)."""
    seen = 0
    stack = [node]
    while stack and seen <= limit:
        item = stack.pop()
        seen += 1
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return seen


_ALIAS = re.compile(r"(?:^|[\s\[{,:-])\*[^\s,\]}]+")


def _first_alias_line(text: str) -> int | None:
    """The line of the first alias (``*name``): where a runaway expansion starts."""
    for number, line in enumerate(text.splitlines(), start=1):
        if _ALIAS.search(line.split("#", 1)[0]):
            return number
    return None


def check_expansion(doc: Any, file: str, limit: int = MAX_EXPANDED_VALUES, *, line: int | None = None) -> None:
    """Fail fast when the document's aliases expand past `limit` values ("billion laughs":
    ruamel keeps one node per anchor, but converting to plain data would copy every use).
    `line` is where the first alias is, so the message points at it."""
    if count_values(doc, limit) > limit:
        raise YamlFileError([Problem(file, line, None,
                                     f"the YAML expands to more than {limit:,} values: aliases (*name) that "
                                     "repeat other aliases multiply; write the values out instead")])


# ---- pydantic errors ---------------------------------------------------------------------------

def did_you_mean(key: str, allowed: Iterable[str]) -> str | None:
    """The allowed word closest to `key`, if one is close enough to be a likely typo."""
    choices = [a for a in allowed if a != key]
    lowered = {a.lower(): a for a in choices}
    if key.lower() in lowered:
        return lowered[key.lower()]
    matches = difflib.get_close_matches(key, choices, n=1, cutoff=0.6)
    return matches[0] if matches else None


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    for arg in typing.get_args(annotation):
        found += _models_in(arg)
    return found


def model_at(model: type[BaseModel], loc: Iterable[Any]) -> type[BaseModel] | None:
    """The model class that holds the key at the end of `loc` (list indexes and dict keys skipped)."""
    current: type[BaseModel] | None = model
    for step in loc:
        if current is None:
            return None
        if isinstance(step, int):
            continue
        fields = {**current.model_fields, **{f.alias: f for f in current.model_fields.values() if f.alias}}
        if step not in fields:
            continue  # a dict key or a validator name: stay on the same model
        models = _models_in(fields[step].annotation)
        current = models[0] if models else None
    return current


def allowed_keys(model: type[BaseModel]) -> list[str]:
    return [f.alias or name for name, f in model.model_fields.items()]


def describe(error: dict, model: type[BaseModel] | None = None) -> str:
    """'field.path: message' for one pydantic error; an unknown key gets 'did you mean'."""
    loc = [part for part in error["loc"] if not str(part).startswith("function-")]
    message = error["msg"].removeprefix("Value error, ")
    if error["type"].startswith("date") and isinstance(error.get("input"), str):
        message = f"{error['input']!r} is not a real date ({message[0].lower()}{message[1:]})"
    if error["type"] == "missing":
        message = "required field is missing"
    if error["type"] == "extra_forbidden" and loc:
        message = unknown_key_message(str(loc[-1]), model_at(model, loc[:-1]) if model else None)
        loc = loc[:-1]
    where = ".".join(str(part) for part in loc)
    return f"{where}: {message}" if where else message


def unknown_key_message(key: str, holder: type[BaseModel] | None) -> str:
    """"unknown key 'tags' (did you mean 'tag'?)"."""
    guess = did_you_mean(key, allowed_keys(holder)) if holder is not None else None
    return f"unknown key {key!r}" + (f" (did you mean {guess!r}?)" if guess else "")


def validation_problems(exc: ValidationError, node: Any, file: str, entry: str | None,
                        model: type[BaseModel] | None = None) -> list[Problem]:
    """Each pydantic error as a Problem at the line of the deepest YAML node it names."""
    return [Problem(file, line_for_loc(node, error["loc"]), entry, describe(error, model))
            for error in exc.errors()]


def validated(model: type[BaseModel], node: Any, file: str, entry: str | None,
              problems: list[Problem]) -> BaseModel | None:
    """`model` from a YAML node, or None with its problems appended to `problems`."""
    try:
        return model.model_validate(plain(node))
    except ValidationError as exc:
        problems += validation_problems(exc, node, file, entry, model)
        return None


@dataclass(frozen=True)
class Entry:
    """One validated entry of a YAML list: the model, its node, its line and its name for messages."""

    item: Any
    node: Any
    line: int | None
    name: str


def validated_entries(section: Any, kind: str, model: type[BaseModel] | Callable[[Any], type[BaseModel] | None],
                      file: str, problems: list[Problem]) -> Iterator[Entry]:
    """Each mapping of a YAML list validated as `model`, with its line and name ("metric x", "rule #3").

    `model` may also be a function of the node that picks the model (or appends its own problem
    and returns None). An entry that is not a mapping, does not validate, or repeats an earlier
    id becomes a problem and is skipped, so one bad entry never hides the rest of the file.
    """
    first_line: dict[str, int] = {}
    for index, node in enumerate(section):
        line = line_of(section, index)
        raw_id = node.get("id") if isinstance(node, CommentedMap) else None
        name = f"{kind} {raw_id}" if raw_id else f"{kind} #{index + 1}"
        if not isinstance(node, CommentedMap):
            problems.append(Problem(file, line, name, f"each {kind} must be a mapping of fields"))
            continue
        chosen = model if isinstance(model, type) else model(node, line, name)
        item = validated(chosen, node, file, name, problems) if chosen is not None else None
        if item is None:
            continue
        if item.id in first_line:
            problems.append(Problem(file, line, name, f"duplicate {kind} id {item.id!r} "
                                                     f"(first defined at line {first_line[item.id]})"))
            continue
        first_line[item.id] = line or 0
        yield Entry(item, node, line, name)


__all__ = ["MAX_EXPANDED_VALUES", "MAX_FILE_BYTES", "Problem", "model_at", "YamlFileError", "allowed_keys", "check_expansion",
           "decode", "describe", "did_you_mean", "line_for_loc", "line_of", "mapping_document", "node_line", "parse_yaml", "plain",
           "read_text", "read_yaml", "round_trip_yaml", "unknown_key_message", "validated",
           "validation_problems", "Entry", "validated_entries"]
