"""Load Rego modules and data files from folders or files, as `opa test`/`opa check` do.

Data: in a bundle only files named data.json / data.yaml count (OPA's bundle format); for `opa test`
(`all_data=True`) every .json, .yaml and .yml file does, as OPA's loader reads them. Each lands at its
folder's path under `data`, and everything is deep-merged: two files may fill the same object, but a
value that would replace another is a conflict, never a silent overwrite.
"""

from __future__ import annotations

import fnmatch
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


DATA_SUFFIXES = (".json", ".yaml", ".yml")


def load(paths: list[str], *, all_data: bool = False, ignore: list[str] | None = None) -> Sources:
    found = Sources()
    for arg in paths:
        root = Path(arg)
        if not root.exists():
            raise BundleError(f"{arg}: no such file or directory")
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for path in files:
            display = path.as_posix()
            if ignore and _ignored(path, root, ignore):
                continue
            if path.suffix == ".rego":
                try:
                    found.modules[display] = path.read_text(encoding="utf-8")
                except UnicodeDecodeError as exc:
                    raise BundleError(f"{display}: not UTF-8") from exc
            elif _is_data(path, all_data=all_data):
                keys = path.parent.relative_to(root).parts if root.is_dir() else ()
                _insert(found.data, list(keys), _read_data(path), display)
    return found


def _is_data(path: Path, *, all_data: bool) -> bool:
    if all_data:
        return path.suffix in DATA_SUFFIXES
    return path.name in ("data.json", "data.yaml")


def _ignored(path: Path, root: Path, patterns: list[str]) -> bool:
    relative = path.relative_to(root).as_posix() if root.is_dir() else path.name
    parts = relative.split("/")
    return any(fnmatch.fnmatch(relative, p) or any(fnmatch.fnmatch(part, p) for part in parts) for p in patterns)


def _read_data(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
        return json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError, UnicodeDecodeError) as exc:
        raise BundleError(f"{path.as_posix()}: data file does not parse") from exc


def _insert(tree: dict[str, Any], keys: list[str], value: Any, display: str) -> None:
    """Deep-merge `value` at `keys`; a value that would replace a different one is a conflict."""
    node = tree
    for key in keys[:-1]:
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            raise BundleError(f"{display}: data path {'/'.join(keys)} conflicts with another data file")
        node = child
    if not keys:
        if not isinstance(value, dict):
            raise BundleError(f"{display}: a root data file must hold an object")
        _merge(tree, value, display, [])
        return
    if keys[-1] in node:
        _merge(node, {keys[-1]: value}, display, keys[:-1])
    else:
        node[keys[-1]] = value


def _merge(into: dict[str, Any], value: dict[str, Any], display: str, where: list[str]) -> None:
    for key, item in value.items():
        if key not in into:
            into[key] = item
        elif isinstance(into[key], dict) and isinstance(item, dict):
            _merge(into[key], item, display, [*where, key])
        elif into[key] != item:
            raise BundleError(f"{display}: data path {'/'.join([*where, key])} conflicts with another data file")
