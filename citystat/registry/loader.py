"""Load metrics.yaml into a `Registry`, keeping line numbers for every error.

One broken metric must not take the dashboard down: each department, source and metric is
validated on its own; a broken entry is left out and reported as a `Problem` naming the file,
the line and the entry, and everything healthy is kept.
"""

from __future__ import annotations

import graphlib
import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml.comments import CommentedSeq

from citystat.registry.models import City, Department, Metric, RegistryFile, Source
from citystat.registry.yamlfile import (
    Problem,
    YamlFileError,
    allowed_keys,
    did_you_mean,
    line_of,
    mapping_document,
    read_text,
    validated,
    validated_entries,
)
from citystat.registry.yamlfile import parse_yaml as _parse_yaml

MAX_DERIVED_DEPTH = 20  # derived metrics built on derived metrics, this many levels at most
MAX_METRICS = 1_000  # a city reviews tens to hundreds; thousands is a generated file or an attack
DERIVED_TOKEN = re.compile(r"\s*(?:(?P<id>[a-z][a-z0-9_]*)|(?P<num>\d+(?:\.\d+)?)|(?P<op>[-+*/()]))")


class RegistryError(YamlFileError):
    """The registry cannot be used at all (unreadable file, broken YAML, no city section)."""


@dataclass
class Registry:
    path: Path
    city: City
    departments: dict[str, Department]
    sources: dict[str, Source]
    metrics: dict[str, Metric]
    problems: list[Problem] = field(default_factory=list)
    lines: dict[str, int] = field(default_factory=dict)  # "metric:<id>" -> 1-based line
    text: str = ""
    data_root_override: Path | None = None  # set by load_registry(data_root=...), e.g. a preview copy
    _sql_sources: dict[str, list[str]] = field(default_factory=dict, repr=False)  # sql file -> sources

    @property
    def root(self) -> Path:
        return self.path.parent

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    def line_of(self, kind: str, entry_id: str) -> int | None:
        return self.lines.get(f"{kind}:{entry_id}")

    def resolve(self, relative: str) -> str:
        """A source path or query file, resolved against the registry's folder (URLs kept)."""
        if "://" in relative:
            return relative
        path = Path(relative)
        return str(path if path.is_absolute() else (self.root / path).resolve())

    @property
    def data_root(self) -> Path:
        """The folder that holds the extracts: $CITYSTAT_DATA_ROOT when set (extracts kept apart
        from the registry), else the registry's folder. Sources must lie inside it."""
        if self.data_root_override is not None:
            return self.data_root_override
        root = os.environ.get("CITYSTAT_DATA_ROOT")
        return Path(os.path.abspath(Path(root).expanduser() if root else self.root))

    def resolve_source(self, relative: str) -> str:
        """A source's path: relative paths resolve against the data root; URLs are kept."""
        if "://" in relative:
            return relative
        # normalised by text, not by following links: a data folder may be a link to a disk
        return os.path.abspath(self.data_root / Path(relative).expanduser())

    def source_outside_data_root(self, relative: str) -> bool:
        """A local source path (or the fixed part of a glob) that leaves the data root."""
        if "://" in relative:
            return False
        glob_at = re.search(r"[*?\[]", relative)
        if glob_at and ".." in Path(relative[glob_at.start():]).parts:
            return True  # a glob that climbs out after its wildcard
        fixed = re.split(r"[*?\[]", self.resolve_source(relative), maxsplit=1)[0]
        return not Path(fixed).is_relative_to(self.data_root)

    def sql_text(self, relative: str) -> str:
        return Path(self.resolve(relative)).read_text(encoding="utf-8")

    def metrics_of(self, department: str) -> list[Metric]:
        return [m for m in self.metrics.values() if m.department == department]

    def metrics_tagged(self, tag: str) -> list[Metric]:
        return [m for m in self.metrics.values() if tag in m.tags]

    def source_of(self, metric: Metric) -> Source | None:
        return self.sources.get(metric.source) if metric.source else None

    def sources_of(self, metric: Metric) -> list[str]:
        """Every source a metric reads, following derived metrics and SQL files (iteratively:
        derived chains are bounded by the loader, but no chain may exhaust the stack)."""
        found: list[str] = []
        pending, seen = [metric], {metric.id}
        while pending:
            current = pending.pop()
            if current.derived:
                for dep in derived_references(current.derived):
                    if dep in self.metrics and dep not in seen:
                        seen.add(dep)
                        pending.append(self.metrics[dep])
                continue
            found += [s for s in self._direct_sources(current) if s not in found]
        return found

    def _direct_sources(self, metric: Metric) -> list[str]:
        if metric.source:
            return [metric.source]
        if not metric.sql:
            return []
        if metric.sql not in self._sql_sources:  # read each query file once per loaded registry
            try:
                text = self.sql_text(metric.sql)
            except OSError:
                return []
            self._sql_sources[metric.sql] = [s for s in self.sources if re.search(rf"\b{re.escape(s)}\b", text)]
        return self._sql_sources[metric.sql]

    def fingerprint(self) -> str:
        """Hash of the registry text and every query file it uses (not the data)."""
        digest = hashlib.sha256(self.text.encode())
        for rel in sorted(_query_files(self)):
            try:
                digest.update(Path(self.resolve(rel)).read_bytes())
            except OSError:
                digest.update(b"missing:" + rel.encode())
        return digest.hexdigest()[:16]


def _query_files(registry: Registry) -> set[str]:
    files = {m.sql for m in registry.metrics.values() if m.sql}
    files |= {s.sql for s in registry.sources.values() if s.sql}
    return files


def derived_references(expression: str) -> list[str]:
    """Metric ids used by a derived expression; raises ValueError on anything but arithmetic."""
    ids: list[str] = []
    position = 0
    while position < len(expression.rstrip()):
        match = DERIVED_TOKEN.match(expression, position)
        if not match or match.end() == position:
            raise ValueError(
                f"derived expression may use only metric ids, numbers and + - * / ( ): "
                f"cannot read {expression[position:].strip()!r}")
        if match.group("id"):
            ids.append(match.group("id"))
        position = match.end()
    return ids


def parse_yaml(text: str, file: str) -> Any:
    """Parse registry YAML text; errors raise RegistryError naming the file and line."""
    try:
        return _parse_yaml(text, file)
    except YamlFileError as exc:
        raise RegistryError(exc.problems) from None


def load_registry(path: str | Path, *, data_root: str | Path | None = None) -> Registry:
    """Load and statically check a registry. Raises RegistryError only when nothing is usable.

    `data_root` overrides where the extracts are (default: $CITYSTAT_DATA_ROOT, else the
    registry's folder)."""
    path = Path(path).resolve()
    file = str(path)
    try:
        text = read_text(path)
        _count_metrics_fast(text, file)
        doc = mapping_document(_parse_yaml(text, file), file,
                               top_level="a mapping with city, departments, sources, metrics")
    except YamlFileError as exc:
        raise RegistryError(exc.problems) from None

    problems: list[Problem] = []
    unknown = set(doc) - {"city", "departments", "sources", "metrics"}
    for key in sorted(unknown, key=str):
        guess = did_you_mean(str(key), allowed_keys(RegistryFile))
        hint = f" (did you mean {guess!r}?)" if guess else ""
        problems.append(Problem(file, line_of(doc, key), None, f"unknown top-level key {key!r}{hint}"))
    if "city" not in doc:
        raise RegistryError([Problem(file, 1, None, "missing 'city' section")])
    city = validated(City, doc["city"], file, "city", problems)
    if city is None:
        raise RegistryError(problems)

    registry = Registry(path=path, city=city, departments={}, sources={}, metrics={}, problems=problems, text=text,
                        data_root_override=Path(os.path.abspath(data_root)) if data_root is not None else None)
    for kind, model, target in (("department", Department, registry.departments),
                                ("source", Source, registry.sources),
                                ("metric", Metric, registry.metrics)):
        section = doc.get(kind + "s")
        if section is None:
            problems.append(Problem(file, 1, None, f"missing '{kind}s' section"))
            continue
        if not isinstance(section, CommentedSeq):
            problems.append(Problem(file, line_of(doc, kind + "s"), None, f"'{kind}s' must be a list"))
            continue
        if kind == "metric" and len(section) > MAX_METRICS:
            raise RegistryError([Problem(file, line_of(doc, "metrics"), None, _too_many(len(section)))])
        for entry in validated_entries(section, kind, model, file, problems):
            target[entry.item.id] = entry.item
            registry.lines[f"{kind}:{entry.item.id}"] = entry.line or 0

    _check_references(registry)
    return registry


def _count_metrics_fast(text: str, file: str) -> None:
    """Refuse too many metrics before the line-keeping parse, which takes about 6 ms a metric:
    libyaml's C parser (PyYAML, when installed) counts them about ten times faster."""
    try:
        import yaml

        loader = yaml.CSafeLoader
    except (ImportError, AttributeError):
        return
    try:
        root = yaml.compose(text, Loader=loader)
    except yaml.YAMLError:
        return  # the full parse reports it with its line
    if not isinstance(root, yaml.MappingNode):
        return
    for key, value in root.value:
        if getattr(key, "value", None) == "metrics" and isinstance(value, yaml.SequenceNode) \
                and len(value.value) > MAX_METRICS:
            raise RegistryError([Problem(file, key.start_mark.line + 1, None, _too_many(len(value.value)))])


def _too_many(count: int) -> str:
    return f"{count:,} metrics, more than the limit of {MAX_METRICS:,}: split the registry or remove what is not reviewed"


def empty_registry(path: str | Path) -> Registry:
    """A city with nothing in it: what the app serves when its first registry does not load."""
    return Registry(path=Path(path).resolve(), city=City(name="CityStat"), departments={}, sources={}, metrics={})


def _drop(registry: Registry, metric_id: str, message: str) -> None:
    registry.problems.append(Problem(str(registry.path), registry.line_of("metric", metric_id),
                                     f"metric {metric_id}", message))
    registry.metrics.pop(metric_id, None)


def _check_references(registry: Registry) -> None:
    """Cross-entry checks: departments, sources, files, dimensions, derived cycles."""
    file = str(registry.path)
    for source in list(registry.sources.values()):
        problem = None
        if source.department and source.department not in registry.departments:
            problem = f"unknown department {source.department!r}"
        elif source.path and registry.source_outside_data_root(source.path):
            problem = (f"path {source.path!r} is outside the data folder {registry.data_root}: extracts must "
                       "be inside it (set CITYSTAT_DATA_ROOT to the folder that holds them)")
        elif source.sql and not _inside(registry, source.sql):
            problem = f"query file {source.sql!r} must be inside the registry's folder"
        elif source.sql and not Path(registry.resolve(source.sql)).is_file():
            problem = f"query file {source.sql!r} not found"
        if problem:
            registry.problems.append(Problem(file, registry.line_of("source", source.id), f"source {source.id}", problem))
            registry.sources.pop(source.id)

    for metric in list(registry.metrics.values()):
        if metric.department not in registry.departments:
            known = ", ".join(sorted(registry.departments))
            _drop(registry, metric.id, f"unknown department {metric.department!r} (known: {known})")
        elif metric.source and metric.source not in registry.sources:
            _drop(registry, metric.id, f"unknown source {metric.source!r}")
        elif metric.sql and not _inside(registry, metric.sql):
            _drop(registry, metric.id, f"query file {metric.sql!r} must be inside the registry's folder")
        elif metric.sql and not Path(registry.resolve(metric.sql)).is_file():
            _drop(registry, metric.id, f"query file {metric.sql!r} not found")
        elif metric.source and not (metric.time_column or registry.sources[metric.source].time_column):
            _drop(registry, metric.id, f"source {metric.source!r} has no time_column: give the metric one")
        elif metric.source:
            source = registry.sources[metric.source]
            missing = [d for d in metric.dimensions if source.columns and d not in source.columns]
            if missing:
                _drop(registry, metric.id, f"dimension(s) {', '.join(missing)} are not columns of source {source.id!r}")

    graph: dict[str, set[str]] = {}
    for metric in list(registry.metrics.values()):
        if not metric.derived:
            continue
        try:
            refs = derived_references(metric.derived)
        except ValueError as exc:
            _drop(registry, metric.id, str(exc))
            continue
        unknown = [r for r in refs if r not in registry.metrics]
        if unknown:
            _drop(registry, metric.id, f"derived expression uses unknown metric(s): {', '.join(unknown)}")
            continue
        graph[metric.id] = set(refs)
    try:
        order = list(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as exc:
        cycle = exc.args[1]
        for metric_id in dict.fromkeys(cycle):
            if metric_id in registry.metrics:
                _drop(registry, metric_id, "derived metrics form a cycle: " + " -> ".join(cycle))
        return
    _check_derived_depth(registry, graph, order)


def _check_derived_depth(registry: Registry, graph: dict[str, set[str]], order: list[str]) -> None:
    """Derived metrics may build on derived metrics at most MAX_DERIVED_DEPTH deep (iteratively)."""
    depth: dict[str, int] = {}
    for metric_id in order:  # dependencies come first
        if metric_id not in graph:
            continue
        if metric_id not in registry.metrics:
            continue
        left_out = [r for r in graph[metric_id] if r not in registry.metrics]
        if left_out:
            _drop(registry, metric_id, f"derived expression uses metric(s) that were left out: {', '.join(sorted(left_out))}")
            continue
        depth[metric_id] = 1 + max((depth.get(r, 0) for r in graph[metric_id]), default=0)
        if depth[metric_id] > MAX_DERIVED_DEPTH:
            _drop(registry, metric_id, f"derived metrics nest {depth[metric_id]} deep here (each built on the one "
                                       f"before); the limit is {MAX_DERIVED_DEPTH}: build it from declared metrics")


def _inside(registry: Registry, relative: str) -> bool:
    if "://" in relative:
        return False
    resolved = Path(registry.resolve(relative))
    return resolved.is_relative_to(registry.root.resolve())


def derived_order(registry: Registry) -> list[str]:
    """Derived metric ids in dependency order."""
    graph = {m.id: set(derived_references(m.derived)) for m in registry.metrics.values() if m.derived}
    order = graphlib.TopologicalSorter(graph).static_order()
    return [m for m in order if m in graph]
