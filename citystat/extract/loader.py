"""Load extracts.yaml, reporting each problem with its file, line and entry (as the registry does)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ruamel.yaml.comments import CommentedMap, CommentedSeq

from citystat.extract.models import CsvExtract, ExcelExtract, HttpExtract, PostgresExtract
from citystat.registry.yamlfile import (
    Problem,
    YamlFileError,
    did_you_mean,
    line_of,
    parse_yaml,
    read_text,
    validated_entries,
)

KINDS = {"csv": CsvExtract, "excel": ExcelExtract, "postgres": PostgresExtract, "http": HttpExtract}


@dataclass
class ExtractsConfig:
    path: Path
    extracts: dict[str, CsvExtract | ExcelExtract | PostgresExtract | HttpExtract]
    lines: dict[str, int]
    problems: list[Problem]

    @property
    def root(self) -> Path:
        return self.path.parent

    def input_path(self, relative: str) -> Path:
        path = Path(relative).expanduser()
        return path if path.is_absolute() else (self.root / path).resolve()

    def output_path(self, relative: str) -> Path:
        """Like registry source paths: absolute, or relative to $CITYSTAT_DATA_ROOT when set, else to this file."""
        path = Path(relative).expanduser()
        if path.is_absolute():
            return path
        root = os.environ.get("CITYSTAT_DATA_ROOT")
        return (Path(root).expanduser() / path).resolve() if root else (self.root / path).resolve()


def load_extracts(path: str | Path) -> ExtractsConfig:
    """Read and check extracts.yaml. Broken entries are left out and reported; YamlFileError when unusable."""
    path = Path(path).resolve()
    file = str(path)
    doc = parse_yaml(read_text(path), file)
    if not isinstance(doc, CommentedMap) or not isinstance(doc.get("extracts"), CommentedSeq):
        raise YamlFileError([Problem(file, 1, None, "extracts file must be a mapping with an 'extracts' list")])
    problems: list[Problem] = []
    for key in sorted(set(doc) - {"extracts"}, key=str):
        hint = did_you_mean(str(key), ["extracts"])
        problems.append(Problem(file, line_of(doc, key), None,
                                f"unknown top-level key {key!r}" + (f" (did you mean {hint!r}?)" if hint else "")))
    config = ExtractsConfig(path=path, extracts={}, lines={}, problems=problems)
    section = doc["extracts"]
    def model_for(node, line, name):
        model = KINDS.get(node.get("kind"))
        if model is None:
            hint = did_you_mean(str(node.get("kind")), list(KINDS))
            problems.append(Problem(file, line_of(node, "kind") or line, name,
                                    f"kind must be one of {', '.join(KINDS)}, not {node.get('kind')!r}"
                                    + (f" (did you mean {hint!r}?)" if hint else "")))
        return model

    for entry in validated_entries(section, "extract", model_for, file, problems):
        config.extracts[entry.item.id] = entry.item
        config.lines[entry.item.id] = entry.line or 0
    return config
