"""The local S3 server: s3proxy 2.6.0 with its filesystem backend, fetched once with Maven.

``gradwalk services up`` starts it when ``GRADWALK_ARTIFACT_URL`` is ``s3://...`` and
``GRADWALK_S3_ENDPOINT_URL`` points at this host; the tests start it the same way. Its objects are
plain files under ``<state>/s3`` (one folder per bucket); the bucket of the artifact URL is made
before the server starts. Elsewhere any S3-compatible server does (AWS S3, MinIO, a compose service).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from gradwalk import errors
from gradwalk.java_build import maven_build, source_fingerprint
from gradwalk.settings import Settings

S3PROXY_SOURCE = Path(__file__).resolve().parents[2] / "services" / "s3proxy"
S3PROXY_JAR = "s3proxy-2.6.0.jar"
S3PROXY_MAIN = "org.gaul.s3proxy.Main"
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def wanted(settings: Settings) -> bool:
    """True when the artifact store is S3 on an endpoint of this host (so gradwalk runs the server)."""
    if not (settings.artifact_url or "").startswith("s3://") or not settings.s3_endpoint_url:
        return False
    return urlsplit(settings.s3_endpoint_url).hostname in LOOPBACK


def address(settings: Settings) -> tuple[str, int]:
    parts = urlsplit(settings.s3_endpoint_url or "")
    return parts.hostname or "127.0.0.1", parts.port or 80


def bucket(settings: Settings) -> str:
    return urlsplit(settings.artifact_url or "").netloc


def s3proxy_build(settings: Settings) -> Path:
    """Folder of the fetched s3proxy (may not exist yet)."""
    return settings.cache_dir / "s3proxy" / source_fingerprint(S3PROXY_SOURCE)


def build_s3proxy(settings: Settings, *, echo: Callable[[str], None] = lambda _: None) -> Path:
    """Fetch s3proxy and its libraries with Maven once; later calls return the cached folder."""
    return maven_build(S3PROXY_SOURCE, s3proxy_build(settings),
                       ["dependency:copy-dependencies", "-DoutputDirectory=lib", "-DincludeScope=runtime"],
                       ["lib", "logback.xml"], maven_bin=settings.maven_bin, java_bin=settings.java_bin,
                       what="s3proxy (the local S3 server)", echo=echo)


def command(settings: Settings, properties: Path) -> list[str]:
    build = s3proxy_build(settings)
    return [settings.java_bin, "-Xmx256m", f"-Dlogback.configurationFile={build / 'logback.xml'}",
            "-cp", f"{build / 'lib'}/*", S3PROXY_MAIN, "--properties", str(properties)]


def write_properties(settings: Settings, properties: Path, data: Path) -> None:
    """s3proxy's configuration, readable by the owner only (it holds the secret key)."""
    secret = settings.s3_secret_access_key
    if not settings.s3_access_key_id or secret is None:
        raise errors.InvalidInput("the local S3 server needs GRADWALK_S3_ACCESS_KEY_ID and "
                                  "GRADWALK_S3_SECRET_ACCESS_KEY (any values; the workers use the same)")
    if not bucket(settings):
        raise errors.InvalidInput(f"GRADWALK_ARTIFACT_URL {settings.artifact_url!r} names no bucket")
    (data / bucket(settings)).mkdir(parents=True, exist_ok=True)  # a bucket is a folder of the backend
    host, port = address(settings)
    lines = [
        f"s3proxy.endpoint=http://{host}:{port}",
        "s3proxy.authorization=aws-v2-or-v4",
        f"s3proxy.identity={settings.s3_access_key_id}",
        f"s3proxy.credential={secret.get_secret_value()}",
        "jclouds.provider=filesystem",
        f"jclouds.filesystem.basedir={data}",
    ]
    properties.parent.mkdir(parents=True, exist_ok=True)
    properties.touch(mode=0o600)
    properties.write_text("\n".join(lines) + "\n")
