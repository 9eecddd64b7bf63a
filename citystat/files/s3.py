"""Files on a local folder or an S3-compatible object store, behind one small interface.

Why this exists: a city that runs several app replicas keeps its extracts and the published
KPI rollups in one place every machine can reach, usually object storage (AWS S3, MinIO,
Ceph, ...). This module is the only one that talks to it.

- `S3Settings.from_env()` reads the endpoint and credentials: `CITYSTAT_S3_ENDPOINT` (or
  `AWS_ENDPOINT_URL`), `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`,
  `AWS_REGION` / `AWS_DEFAULT_REGION`, and `CITYSTAT_S3_URL_STYLE` (`path` or `virtual`;
  default `path` when an endpoint is set, since MinIO-style servers need it).
- `Folder.at("s3://bucket/prefix")` or `Folder.at("/srv/citystat/rollups")`: read and write
  small files by name; `publish()` writes a set of files and then replaces the pointer file
  last, so a reader sees the old set or the new set, never half of one.
- `list_objects()` and `mirror()` let the DuckDB engine read `s3://` sources offline:
  DuckDB 2.0's wheel does not bundle `httpfs` and `INSTALL httpfs` needs the network, so
  the objects are copied (only when their ETag changed) into a local cache folder and the
  engine reads those local copies inside its normal sandbox.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import re
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Protocol
from urllib.parse import urlparse

from citystat.files.local import STALE_TEMP_SECONDS, TEMP_PREFIX, atomic_write, expand

WILDCARDS = "*?["


class ObjectStoreError(Exception):
    """An object store could not be reached or a file could not be read/written (says which)."""


def is_s3(location: str | os.PathLike) -> bool:
    return str(location).startswith("s3://")


def split_s3_url(url: str) -> tuple[str, str]:
    """`s3://bucket/some/key` -> ("bucket", "some/key")."""
    parsed = urlparse(url)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise ObjectStoreError(f"not an s3:// URL with a bucket: {url!r}")
    return parsed.netloc, parsed.path.lstrip("/")


# ---- settings ------------------------------------------------------------------------------

@dataclass(frozen=True)
class S3Settings:
    """Where the object store is and how to sign in to it. Secrets are never printed."""

    endpoint: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None
    session_token: str | None = None
    region: str = "us-east-1"
    url_style: str = "virtual"

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> "S3Settings":
        env = os.environ if environ is None else environ
        endpoint = env.get("CITYSTAT_S3_ENDPOINT") or env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL")
        style = env.get("CITYSTAT_S3_URL_STYLE") or ("path" if endpoint else "virtual")
        if style not in ("path", "virtual"):
            raise ObjectStoreError(f"CITYSTAT_S3_URL_STYLE must be 'path' or 'virtual', not {style!r}")
        return cls(endpoint=endpoint or None,
                   access_key_id=env.get("AWS_ACCESS_KEY_ID") or None,
                   secret_access_key=env.get("AWS_SECRET_ACCESS_KEY") or None,
                   session_token=env.get("AWS_SESSION_TOKEN") or None,
                   region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1",
                   url_style=style)

    @property
    def use_ssl(self) -> bool:
        return not (self.endpoint or "").startswith("http://")

    def __repr__(self) -> str:  # keep secrets out of logs and tracebacks
        return (f"S3Settings(endpoint={self.endpoint!r}, region={self.region!r}, url_style={self.url_style!r}, "
                f"access_key_id={'set' if self.access_key_id else None})")

    def client(self):
        """A boto3 S3 client (cached per settings: creating one costs ~50 ms)."""
        return _client(self)


_CLIENTS: dict[S3Settings, object] = {}


def _client(settings: S3Settings):
    if settings not in _CLIENTS:
        import boto3
        from botocore.config import Config

        _CLIENTS[settings] = boto3.session.Session().client(
            "s3", endpoint_url=settings.endpoint, region_name=settings.region,
            aws_access_key_id=settings.access_key_id, aws_secret_access_key=settings.secret_access_key,
            aws_session_token=settings.session_token,
            config=Config(s3={"addressing_style": settings.url_style}, retries={"max_attempts": 2, "mode": "standard"},
                          connect_timeout=5, read_timeout=30))
    return _CLIENTS[settings]


def _describe(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# ---- listing and mirroring s3:// sources ----------------------------------------------------

@dataclass(frozen=True)
class ObjectInfo:
    """One object as listed: enough to tell whether it changed (ETag, size, LastModified)."""

    url: str
    key: str
    size: int
    etag: str
    last_modified: datetime

    def signature(self) -> str:
        return f"{self.url}|{self.etag}|{self.size}|{self.last_modified.isoformat()}"


def list_objects(url: str, settings: S3Settings | None = None) -> list[ObjectInfo]:
    """The objects an `s3://bucket/key` URL names: one key, or every key a glob pattern matches.

    Sorted by key. A missing single object gives an empty list (the caller reports it).
    """
    settings = settings or S3Settings.from_env()
    bucket, key = split_s3_url(url)
    wild = min((key.index(c) for c in WILDCARDS if c in key), default=None)
    prefix = key if wild is None else key[:wild]
    found: list[ObjectInfo] = []
    try:
        paginator = settings.client().get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                name = item["Key"]
                if (wild is None and name == key) or (wild is not None and fnmatch.fnmatchcase(name, key)):
                    found.append(ObjectInfo(f"s3://{bucket}/{name}", name, int(item["Size"]),
                                            str(item.get("ETag", "")).strip('"'), item["LastModified"]))
    except Exception as exc:  # botocore raises many kinds; all mean "cannot list"
        raise ObjectStoreError(f"cannot list {url}: {_describe(exc)}") from None
    return sorted(found, key=lambda o: o.key)


def mirror_folder(cache_root: Path, url: str) -> Path:
    """Where `mirror` keeps the copies of one s3 URL's bucket: <cache>/s3/<bucket>/."""
    bucket, _ = split_s3_url(url)
    return cache_root / "s3" / bucket


def local_pattern(cache_root: Path, url: str) -> str:
    """The local path (or glob) that matches the mirrored copies of `url`."""
    _, key = split_s3_url(url)
    return str(mirror_folder(cache_root, url) / key)


def mirror(url: str, cache_root: Path, settings: S3Settings | None = None) -> tuple[list[ObjectInfo], list[str]]:
    """Copy the objects `url` names into the local cache, downloading only changed ones.

    Returns (the objects as listed, their local paths). Copies of objects that no longer
    exist under the pattern are removed, so a local glob sees exactly what S3 holds.
    Downloads go to a temporary file renamed into place: safe with several processes.
    """
    settings = settings or S3Settings.from_env()
    objects = list_objects(url, settings)
    folder = mirror_folder(cache_root, url)
    etags = cache_root / "s3-etags" / split_s3_url(url)[0]
    client = settings.client()
    paths: list[str] = []
    for obj in objects:
        target = folder / obj.key
        marker = etags / (obj.key + ".etag")
        current = marker.read_text() if marker.exists() and target.exists() else None
        if current != obj.signature():
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                atomic_write(target, lambda temp, obj=obj: client.download_file(split_s3_url(obj.url)[0], obj.key,
                                                                                temp))
            except Exception as exc:
                raise ObjectStoreError(f"cannot download {obj.url}: {_describe(exc)}") from None
            atomic_write(marker, obj.signature().encode())
        paths.append(str(target))
    _, key = split_s3_url(url)
    if any(c in key for c in WILDCARDS):
        for stale in set(expand(str(folder / key))) - set(paths):
            Path(stale).unlink(missing_ok=True)
    return objects, paths


def objects_fingerprint(objects: Iterable[ObjectInfo]) -> str:
    digest = hashlib.sha256()
    for obj in objects:
        digest.update(obj.signature().encode())
    return digest.hexdigest()[:16]


# ---- folders of small files (local or s3) ------------------------------------------------------

class Folder(Protocol):
    location: str

    def read_bytes(self, name: str) -> bytes | None: ...
    def write_bytes(self, name: str, data: bytes, content_type: str | None = None) -> None: ...
    def delete(self, name: str) -> None: ...
    def ages(self) -> dict[str, float]: ...  # name -> seconds since last written, for the folder's files


def folder_at(location: str | os.PathLike, settings: S3Settings | None = None) -> "Folder":
    """A local folder or an s3:// prefix to read and write rollup files in."""
    text = str(location)
    if is_s3(text):
        return S3Folder(text.rstrip("/"), settings or S3Settings.from_env())
    return LocalFolder(str(Path(text).expanduser().resolve()))


@dataclass
class LocalFolder:
    location: str

    def read_bytes(self, name: str) -> bytes | None:
        try:
            return (Path(self.location) / name).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise ObjectStoreError(f"cannot read {Path(self.location) / name}: {exc.strerror}") from None

    def write_bytes(self, name: str, data: bytes, content_type: str | None = None) -> None:
        try:
            (Path(self.location) / name).parent.mkdir(parents=True, exist_ok=True)
            atomic_write(Path(self.location) / name, data)
        except OSError as exc:
            raise ObjectStoreError(f"cannot write {Path(self.location) / name}: {exc.strerror}") from None

    def delete(self, name: str) -> None:
        (Path(self.location) / name).unlink(missing_ok=True)

    def ages(self) -> dict[str, float]:
        now = time.time()
        found = {}
        try:
            entries = list(Path(self.location).iterdir())
        except FileNotFoundError:
            return found
        except OSError as exc:
            raise ObjectStoreError(f"cannot list {self.location}: {exc.strerror}") from None
        for entry in entries:
            try:
                if entry.is_file():
                    found[entry.name] = now - entry.stat().st_mtime
            except OSError:
                continue
        return found


@dataclass
class S3Folder:
    location: str
    settings: S3Settings

    def _key(self, name: str) -> tuple[str, str]:
        bucket, prefix = split_s3_url(self.location + "/")
        return bucket, prefix + name

    def read_bytes(self, name: str) -> bytes | None:
        bucket, key = self._key(name)
        client = self.settings.client()
        try:
            return client.get_object(Bucket=bucket, Key=key)["Body"].read()
        except client.exceptions.NoSuchKey:
            return None
        except Exception as exc:
            raise ObjectStoreError(f"cannot read s3://{bucket}/{key}: {_describe(exc)}") from None

    def write_bytes(self, name: str, data: bytes, content_type: str | None = None) -> None:
        bucket, key = self._key(name)
        extra = {"ContentType": content_type} if content_type else {}
        try:  # one PUT is atomic: readers see the old object or the new one
            self.settings.client().put_object(Bucket=bucket, Key=key, Body=data, **extra)
        except Exception as exc:
            raise ObjectStoreError(f"cannot write s3://{bucket}/{key}: {_describe(exc)}") from None

    def delete(self, name: str) -> None:
        bucket, key = self._key(name)
        try:
            self.settings.client().delete_object(Bucket=bucket, Key=key)
        except Exception as exc:
            raise ObjectStoreError(f"cannot delete s3://{bucket}/{key}: {_describe(exc)}") from None

    def ages(self) -> dict[str, float]:
        bucket, prefix = self._key("")
        found = {}
        try:
            pages = self.settings.client().get_paginator("list_objects_v2").paginate(
                Bucket=bucket, Prefix=prefix, Delimiter="/")
            now = datetime.now(timezone.utc)
            for page in pages:
                for item in page.get("Contents", []):
                    found[item["Key"][len(prefix):]] = (now - item["LastModified"]).total_seconds()
        except Exception as exc:
            raise ObjectStoreError(f"cannot list s3://{bucket}/{prefix}: {_describe(exc)}") from None
        return found


POINTER = "latest.json"


def read_pointer(folder: Folder) -> dict | None:
    """The pointer file's content, or None when nothing was published yet."""
    data = folder.read_bytes(POINTER)
    if data is None:
        return None
    try:
        pointer = json.loads(data)
    except ValueError:
        raise ObjectStoreError(f"{folder.location}/{POINTER} is not JSON") from None
    if not isinstance(pointer, dict) or not isinstance(pointer.get("fingerprint"), str):
        raise ObjectStoreError(f"{folder.location}/{POINTER} has no 'fingerprint'")
    return pointer


PUBLISHED_FILE = re.compile(r"^(rollup|extents|problems|meta)-.+\.(parquet|json)$")


def publish(folder: Folder, files: dict[str, bytes], pointer: dict, keep: int = 5,
            stale_after: float = STALE_TEMP_SECONDS) -> dict:
    """Write `files`, then the pointer LAST (so readers never follow it to missing files).

    The pointer keeps a `history` of published file sets, newest first; sets older than the
    `keep` newest are deleted (a replica still reading one of them gets a clear error and
    simply keeps its current rollup until its next check). So are the leftovers of refreshes
    killed before their pointer: temporary `.tmp-*` files and rollup files no pointer names,
    once older than `stale_after` seconds (younger ones may belong to a refresh still running).
    The returned pointer lists them under `removed` (not written).
    """
    for name, data in files.items():
        folder.write_bytes(name, data)
    previous = read_pointer(folder) or {}
    history = [{"fingerprint": pointer["fingerprint"], "files": sorted(files)}]
    history += [h for h in previous.get("history", []) if h.get("fingerprint") != pointer["fingerprint"]]
    pointer = {**pointer, "files": sorted(files), "history": history[:keep]}
    folder.write_bytes(POINTER, json.dumps(pointer, indent=2, default=str).encode())
    still_used = {name for h in history[:keep] for name in h.get("files", [])}
    removed = []
    for old in history[keep:]:
        for name in old.get("files", []):
            if name not in still_used:
                folder.delete(name)
                removed.append(name)
    for name, age in sorted(folder.ages().items()):
        leftover = name.startswith(TEMP_PREFIX) or (PUBLISHED_FILE.match(name) and name not in still_used)
        if leftover and name not in removed and age >= stale_after:
            folder.delete(name)
            removed.append(name)
    return {**pointer, "removed": removed}
