"""Where a corpus lives: a local folder or an ``s3://bucket/prefix`` URL, and its Icechunk storage.

Every corpus argument (CLI, flows, configs, ``PATH@VERSION`` specs) goes through ``parse_location``,
so a URL is never mangled by ``pathlib`` (``Path("s3://b/p")`` is ``s3:/b/p``). Local paths stay
``Path`` objects; URLs stay strings.

S3 settings come from the usual places: credentials and region from the AWS environment variables,
``~/.aws/config`` / profiles or instance metadata (Icechunk's S3 client, ``from_env``); an
S3-compatible endpoint (MinIO, Ceph, a test server) from ``MOCAP_CORPUS_S3_ENDPOINT`` (the CLI's
``--s3-endpoint`` sets it), else ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL``. With a custom endpoint
requests use path-style addressing and plain ``http://`` is allowed.

Lives in ``schemas``, the bottom package that holds the read side of a corpus: ``schemas.repository``
(the one repository opener) and ``schemas.reader`` resolve locations here, so the writer in
``pipelines``, the trainer in ``uplift`` and the entry points all spell a corpus the same way.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Union

from pydantic import BeforeValidator

from schemas.errors import ConfigError

S3_ENDPOINT_ENV = "MOCAP_CORPUS_S3_ENDPOINT"
S3_REGION_ENV = "MOCAP_CORPUS_S3_REGION"
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
# "s3:/bucket/prefix": what pathlib leaves of a URL that went through Path() somewhere upstream.
_MANGLED_S3 = re.compile(r"^s3:/(?!/)")


def is_url(location: object) -> bool:
    """True for ``scheme://...`` strings (and an ``s3:/`` URL that pathlib collapsed)."""
    s = str(location)
    return bool(_SCHEME.match(s) or _MANGLED_S3.match(s))


def parse_location(value: str | os.PathLike) -> str | Path:
    """A corpus location from the CLI or a config: ``"s3://bucket/prefix"`` (str) or a local ``Path``.

    Raises ConfigError for a URL scheme other than s3 or an s3 URL without a bucket.
    """
    if isinstance(value, Path) and not _MANGLED_S3.match(str(value)):
        return value
    s = str(value)
    if _MANGLED_S3.match(s):
        s = "s3://" + s[len("s3:/"):]
    m = _SCHEME.match(s)
    if not m:
        return Path(s)
    if m.group(1).lower() != "s3":
        raise ConfigError(f"{s}: unsupported corpus URL scheme {m.group(1)!r} (use a local path or s3://bucket/prefix)")
    s3_parts(s)  # validates
    return s.rstrip("/")


def s3_parts(url: str) -> tuple[str, str]:
    """``s3://bucket/a/b`` -> ``("bucket", "a/b")``; ConfigError without a bucket."""
    rest = str(url)[len("s3://"):]
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise ConfigError(f"{url}: no bucket in the S3 URL (expected s3://bucket/prefix)")
    return bucket, prefix.strip("/")


def s3_endpoint() -> str | None:
    """The S3-compatible endpoint URL to use, or None for AWS itself."""
    for var in (S3_ENDPOINT_ENV, "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"):
        if os.environ.get(var):
            return os.environ[var].rstrip("/")
    return None


def s3_region(endpoint: str | None) -> str | None:
    """Region from the environment; a custom endpoint without one gets ``us-east-1`` (what such servers expect)."""
    for var in (S3_REGION_ENV, "AWS_REGION", "AWS_DEFAULT_REGION"):
        if os.environ.get(var):
            return os.environ[var]
    return "us-east-1" if endpoint else None


def storage_for(location: str | os.PathLike):
    """The Icechunk ``Storage`` of a corpus location (local folder or S3 prefix)."""
    import icechunk

    loc = parse_location(location)
    if isinstance(loc, Path):
        return icechunk.local_filesystem_storage(str(loc.resolve()))
    bucket, prefix = s3_parts(loc)
    endpoint = s3_endpoint()
    return icechunk.s3_storage(bucket=bucket, prefix=prefix or None, region=s3_region(endpoint),
                               endpoint_url=endpoint, allow_http=bool(endpoint and endpoint.startswith("http://")),
                               force_path_style=bool(endpoint), from_env=True)


def repository_exists(location: str | os.PathLike) -> bool:
    """True when an Icechunk repository lives at ``location`` (never creates anything)."""
    import icechunk

    loc = parse_location(location)
    if isinstance(loc, Path) and not loc.exists():
        return False
    return bool(icechunk.Repository.exists(storage_for(loc)))


# A pydantic field type for corpus locations (``BuildConfig.corpus``, flow parameters): URLs survive.
CorpusLocation = Annotated[Union[str, Path], BeforeValidator(parse_location)]
