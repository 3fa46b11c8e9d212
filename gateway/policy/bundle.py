"""OPA bundles: build from a policy folder, read, verify.

Layout (OPA's `management-bundles` spec): a gzipped tar holding `.manifest`
(`revision`, `roots`, `rego_version`), Rego modules, `data.json` files whose
directory is their data path, and optionally `.signatures.json`: one compact
JWS whose payload lists every other file with its SHA-256. Rego files are
hashed as bytes; JSON files over OPA's canonical walk (keys sorted, numbers
as written, strings as Go's encoder writes them), so whitespace never matters.

Builds are reproducible: sorted entries, zeroed times and owners, gzip mtime 0.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import posixpath
import re
import tarfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gateway.errors import BundleError
from gateway.policy import jws, v0

MANIFEST = ".manifest"
SIGNATURES = ".signatures.json"
DATA_FILES = ("data.json", "data.yaml")
MAX_COMPRESSED = 32 * 1024 * 1024
MAX_UNCOMPRESSED = 128 * 1024 * 1024
MAX_FILES = 10_000
_PACKAGE = re.compile(r"^\s*package\s+([A-Za-z_][\w.]*)", re.MULTILINE)


@dataclass(frozen=True)
class Bundle:
    revision: str
    roots: tuple[str, ...]
    modules: dict[str, str]  # bundle path -> Rego source
    data: dict[str, Any]  # merged data tree
    files: dict[str, bytes] = field(repr=False)  # every file but the signature, by bundle path
    signed: bool = False

    @property
    def manifest(self) -> dict[str, Any]:
        return {"revision": self.revision, "roots": list(self.roots), "rego_version": 1}


# -- canonical hashing (OPA bundle/hash.go) ---------------------------------


class _Number(str):
    """A JSON number kept as its literal text, as OPA's UseNumber decoding does."""


def _loads_keeping_numbers(raw: bytes) -> Any:
    return json.loads(raw, parse_int=_Number, parse_float=_Number, parse_constant=_reject_constant)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _encode_primitive(value: Any) -> str:
    if isinstance(value, _Number):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False).replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    return json.dumps(value)


def _walk(value: Any, out: list[str]) -> None:
    if isinstance(value, dict):
        out.append("{")
        for i, key in enumerate(sorted(value)):
            if i:
                out.append(",")
            out.append(_encode_primitive(key))
            out.append(":")
            _walk(value[key], out)
        out.append("}")
    elif isinstance(value, list):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _walk(item, out)
        out.append("]")
    else:
        out.append(_encode_primitive(value))


def file_hash(name: str, content: bytes) -> str:
    """SHA-256 hex of a bundle file as OPA computes it for signatures."""
    if posixpath.basename(name) in (MANIFEST, "data.json"):
        parts: list[str] = []
        _walk(_loads_keeping_numbers(content), parts)
        return hashlib.sha256("".join(parts).encode("utf-8")).hexdigest()
    if posixpath.basename(name) == "data.yaml":
        parts = []
        _walk(yaml.safe_load(content), parts)
        return hashlib.sha256("".join(parts).encode("utf-8")).hexdigest()
    return hashlib.sha256(content).hexdigest()


# -- build ------------------------------------------------------------------


def collect_sources(rego_dir: Path) -> dict[str, bytes]:
    """The files of a policy folder that go into a bundle, by bundle path."""
    if not rego_dir.is_dir():
        raise BundleError(f"policy folder {rego_dir} does not exist")
    files: dict[str, bytes] = {}
    for path in sorted(rego_dir.rglob("*")):
        if not path.is_file():
            continue
        rel = path.relative_to(rego_dir).as_posix()
        if (path.suffix == ".rego" and not path.name.endswith("_test.rego")) or path.name in DATA_FILES:
            files[rel] = path.read_bytes()
    if not any(name.endswith(".rego") for name in files):
        raise BundleError(f"policy folder {rego_dir} holds no .rego files")
    return files


def content_revision(files: dict[str, bytes]) -> str:
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + files[name] + b"\0")
    return "sha256-" + digest.hexdigest()[:16]


def build(
    rego_dir: Path, *, revision: str | None = None, signing_key: bytes | None = None, kid: str = "default"
) -> bytes:
    """A bundle of a policy folder, as `opa build` makes one.

    A `.manifest` in the folder is kept (metadata and all), its roots included; `revision` replaces its
    revision. Without one, the roots are the top-level folder names when every file sits in one and
    every package lies under its folder, and otherwise there are none (the bundle owns all of `data`),
    so any layout `opa build` accepts builds here too.
    """
    files = collect_sources(rego_dir)
    given = _manifest_file(rego_dir / MANIFEST)
    manifest = {"rego_version": 1, **given}
    manifest["revision"] = revision or given.get("revision") or content_revision(files)
    if "roots" not in given:
        manifest.pop("roots", None)
        derived = sorted({name.split("/", 1)[0] for name in files if "/" in name})
        if all("/" in name for name in files) and _loads({**manifest, "roots": derived}, files):
            manifest["roots"] = derived
    entries = {MANIFEST: json.dumps(manifest, sort_keys=True, indent=2).encode() + b"\n", **files}
    read(_pack(entries))  # refuse to write a bundle we would not load (roots, JSON, packages)
    if signing_key is not None:
        key = jws.load_private_key(signing_key)
        listed = [
            {"name": name, "hash": file_hash(name, content), "algorithm": "SHA-256"}
            for name, content in entries.items()
        ]
        token = jws.sign({"files": listed, "keyid": kid}, key, kid=kid)
        entries[SIGNATURES] = json.dumps({"signatures": [token]}, indent=2).encode() + b"\n"
    return _pack(entries)


def _manifest_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise BundleError(f"{path}: not valid JSON") from exc
    if not isinstance(manifest, dict):
        raise BundleError(f"{path}: must be a JSON object")
    return manifest


def _loads(manifest: dict[str, Any], files: dict[str, bytes]) -> bool:
    try:
        read(_pack({MANIFEST: json.dumps(manifest).encode(), **files}))
    except BundleError:
        return False
    return True


def _pack(entries: dict[str, bytes]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(entries):
            info = tarfile.TarInfo("/" + name)
            info.size, info.mode, info.mtime = len(entries[name]), 0o644, 0
            tar.addfile(info, io.BytesIO(entries[name]))
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0, filename="") as gz:
        gz.write(raw.getvalue())
    return out.getvalue()


# -- read and verify --------------------------------------------------------


def read(blob: bytes, *, verification_key: bytes | None = None, require_signature: bool = False) -> Bundle:
    """Parse and check a bundle. With a key, the signature must verify and cover every file."""
    return from_files(_unpack(blob), verification_key=verification_key, require_signature=require_signature)


def from_files(
    entries: dict[str, bytes], *, verification_key: bytes | None = None, require_signature: bool = False
) -> Bundle:
    """A bundle from its files by bundle path (a tarball's members, or a folder's files)."""
    entries = dict(entries)
    manifest = _manifest(entries.get(MANIFEST))
    roots = tuple(manifest["roots"])
    signature = entries.pop(SIGNATURES, None)
    if verification_key is not None or require_signature:
        if signature is None:
            raise BundleError("bundle is not signed but a verification key is configured")
        if verification_key is None:
            raise BundleError("bundle verification needs a verification key")
        _check_signature(signature, entries, jws.load_public_key(verification_key))
    modules: dict[str, str] = {}
    data: dict[str, Any] = {}
    for name, content in sorted(entries.items()):
        base = posixpath.basename(name)
        if name.endswith(".rego"):
            source = _module(name, content, roots)
            modules[name] = v0.to_v1(source) if manifest["rego_version"] == 0 else source
        elif base in DATA_FILES:
            _merge_data(data, name, content, roots)
    if not modules:
        raise BundleError("bundle holds no Rego modules")
    return Bundle(str(manifest["revision"]), roots, modules, data, entries, signed=signature is not None)


def read_path(path: str) -> Bundle:
    """A bundle from a .tar.gz or a folder (as `opa test -b` / `opa run -b` take them); modules are named by
    their path on disk for a folder, by `/`-rooted bundle path for a tarball, as OPA prints locations."""
    where = Path(path)
    if where.is_dir():
        files = {p.relative_to(where).as_posix(): p.read_bytes() for p in sorted(where.rglob("*")) if p.is_file()}
        found = from_files(files)
        prefix = where.as_posix().rstrip("/") + "/"
    elif where.is_file():
        found = read(where.read_bytes())
        prefix = "/"
    else:
        raise BundleError(f"{path}: no such file or directory")
    modules = {prefix + name: source for name, source in found.modules.items()}
    return Bundle(found.revision, found.roots, modules, found.data, found.files, found.signed)


def merge_into(tree: dict[str, Any], data: dict[str, Any]) -> None:
    """Several bundles' data in one tree; a path two bundles both set is a conflict (their roots overlap)."""
    for key, value in data.items():
        if key in tree and isinstance(tree[key], dict) and isinstance(value, dict):
            merge_into(tree[key], value)
        elif key in tree:
            raise BundleError(f"data path {key!r} is set by two bundles")
        else:
            tree[key] = value


def _unpack(blob: bytes) -> dict[str, bytes]:
    if len(blob) > MAX_COMPRESSED:
        raise BundleError(f"bundle is {len(blob)} bytes, over the {MAX_COMPRESSED} byte limit")
    try:
        raw = gzip.decompress(blob)  # bounded below by MAX_UNCOMPRESSED before parsing members
    except (OSError, EOFError, zlib.error) as exc:
        raise BundleError("bundle is not a gzip file") from exc
    if len(raw) > MAX_UNCOMPRESSED:
        raise BundleError(f"bundle unpacks to over {MAX_UNCOMPRESSED} bytes")
    entries: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as tar:
            for member in tar:
                if member.isdir():
                    continue
                if not member.isfile():
                    raise BundleError(f"bundle entry {member.name!r} is not a regular file")
                name = _safe_name(member.name)
                if name in entries:
                    raise BundleError(f"bundle entry {name!r} appears twice")
                if len(entries) >= MAX_FILES:
                    raise BundleError(f"bundle holds over {MAX_FILES} files")
                handle = tar.extractfile(member)
                entries[name] = handle.read() if handle else b""
    except tarfile.TarError as exc:
        raise BundleError("bundle is not a tar archive inside its gzip") from exc
    return entries


def _safe_name(name: str) -> str:
    clean = name.lstrip("/")
    parts = clean.split("/")
    if not clean or "\\" in clean or any(p in ("", ".", "..") for p in parts) or "\0" in clean:
        raise BundleError(f"bundle entry name {name!r} is not a plain relative path")
    return clean


def _manifest(raw: bytes | None) -> dict[str, Any]:
    if raw is None:
        return {"revision": "", "roots": [""], "rego_version": 1}
    try:
        manifest = json.loads(raw)
    except ValueError as exc:
        raise BundleError(".manifest is not valid JSON") from exc
    if not isinstance(manifest, dict):
        raise BundleError(".manifest is not a JSON object")
    revision = manifest.get("revision", "")
    roots = manifest.get("roots", [""])
    if not isinstance(revision, str):
        raise BundleError(".manifest revision must be a string")
    if not isinstance(roots, list) or not all(isinstance(r, str) for r in roots):
        raise BundleError(".manifest roots must be a list of strings")
    for i, a in enumerate(roots):
        for b in roots[i + 1 :]:
            if _contains(a, b) or _contains(b, a):
                raise BundleError(f".manifest roots {a!r} and {b!r} overlap")
    rego_version = manifest.get("rego_version", 1)
    if rego_version not in (0, 1) or isinstance(rego_version, bool):
        raise BundleError(".manifest rego_version must be 0 or 1")
    return {"revision": revision, "roots": roots, "rego_version": rego_version}


def _contains(root: str, path: str) -> bool:
    if root == "":
        return True
    root_parts, parts = root.split("/"), path.split("/")
    return parts[: len(root_parts)] == root_parts


def _within_roots(path: str, roots: tuple[str, ...]) -> bool:
    return any(_contains(root, path) for root in roots)


def _module(name: str, content: bytes, roots: tuple[str, ...]) -> str:
    try:
        source = content.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BundleError(f"{name}: Rego module is not UTF-8") from exc
    match = _PACKAGE.search(source)
    if not match:
        raise BundleError(f"{name}: Rego module has no package declaration")
    package_path = match.group(1).replace(".", "/")
    if not _within_roots(package_path, roots):
        raise BundleError(f"{name}: package {match.group(1)} is outside the manifest roots {list(roots)}")
    return source


def _merge_data(tree: dict[str, Any], name: str, content: bytes, roots: tuple[str, ...]) -> None:
    directory = posixpath.dirname(name)
    try:
        value = json.loads(content) if name.endswith(".json") else yaml.safe_load(content)
    except (ValueError, yaml.YAMLError) as exc:
        raise BundleError(f"{name}: data file is not valid {'JSON' if name.endswith('.json') else 'YAML'}") from exc
    keys = directory.split("/") if directory else []
    if not isinstance(value, dict) and not keys:
        raise BundleError(f"{name}: root data file must hold an object")
    if keys and not _within_roots(directory, roots):
        raise BundleError(f"{name}: data path {directory} is outside the manifest roots {list(roots)}")
    node = tree
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise BundleError(f"{name}: data path {directory} conflicts with another data file")
    if keys:
        existing = node.get(keys[-1])
        if existing is not None and not (isinstance(existing, dict) and isinstance(value, dict)):
            raise BundleError(f"{name}: data path {directory} conflicts with another data file")
        node[keys[-1]] = _deep_merge(existing or {}, value) if isinstance(value, dict) else value
    else:
        tree.update(_deep_merge(tree, value))


def _deep_merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = dict(a)
    for key, value in b.items():
        out[key] = _deep_merge(out[key], value) if isinstance(out.get(key), dict) and isinstance(value, dict) else value
    return out


def _check_signature(raw: bytes, entries: dict[str, bytes], key: jws.PublicKey) -> None:
    try:
        doc = json.loads(raw)
        tokens = doc["signatures"]
    except (ValueError, KeyError, TypeError) as exc:
        raise BundleError('.signatures.json is not {"signatures": [JWS]}') from exc
    if not isinstance(tokens, list) or len(tokens) != 1 or not isinstance(tokens[0], str):
        raise BundleError(".signatures.json must hold exactly one JWS")
    _header, payload = jws.verify(tokens[0], key)
    listed: dict[str, dict[str, Any]] = {}
    for item in payload.get("files") or []:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise BundleError("bundle signature lists a malformed file entry")
        listed[item["name"].lstrip("/")] = item
    for name, content in entries.items():
        item = listed.pop(name, None)
        if item is None:
            raise BundleError(f"{name}: file not included in the bundle signature")
        if item.get("algorithm") != "SHA-256":
            raise BundleError(f"{name}: unsupported signature hash algorithm {item.get('algorithm')!r}")
        if item.get("hash") != file_hash(name, content):
            raise BundleError(f"{name}: digest mismatch, the bundle was changed after signing")
    if listed:
        raise BundleError(f"{sorted(listed)[0]}: listed in the signature but missing from the bundle")
