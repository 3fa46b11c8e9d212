"""Load Rego modules and data files from folders or files, as `opa test`/`opa check` do."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gateway.errors import BundleError


@dataclass
class Sources:
    modules: dict[str, str] = field(default_factory=dict)  # display path -> source
    data: dict[str, Any] = field(default_factory=dict)


def load(paths: list[str]) -> Sources:
    found = Sources()
    for arg in paths:
        root = Path(arg)
        if not root.exists():
            raise BundleError(f"{arg}: no such file or directory")
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for path in files:
            display = path.as_posix()
            if path.suffix == ".rego":
                try:
                    found.modules[display] = path.read_text(encoding="utf-8")
                except UnicodeDecodeError as exc:
                    raise BundleError(f"{display}: not UTF-8") from exc
            elif path.name in ("data.json", "data.yaml") and root.is_dir():
                keys = path.parent.relative_to(root).parts
                _insert(found.data, list(keys), _read_data(path), display)
    return found


def _read_data(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
        return json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError, UnicodeDecodeError) as exc:
        raise BundleError(f"{path.as_posix()}: data file does not parse") from exc


def _insert(tree: dict[str, Any], keys: list[str], value: Any, display: str) -> None:
    node = tree
    for key in keys[:-1]:
        node = node.setdefault(key, {})
    if not keys:
        if not isinstance(value, dict):
            raise BundleError(f"{display}: a root data file must hold an object")
        tree.update(value)
        return
    if keys[-1] in node and not (isinstance(node[keys[-1]], dict) and isinstance(value, dict)):
        raise BundleError(f"{display}: data path {'/'.join(keys)} conflicts with another data file")
    if isinstance(value, dict):
        node.setdefault(keys[-1], {}).update(value)
    else:
        node[keys[-1]] = value
