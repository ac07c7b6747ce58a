"""Artifacts on the device: download, digest check, unpack, permissions.

Downloads go through the control plane's GetComponentVersionArtifact (a
presigned URL into S3), land in a temporary file next to the target and are
renamed only after their SHA-256 digest matched the recipe, so a half-written
or tampered file is never used. ZIP archives unpack into
``{artifacts:decompressedPath}/<archive name without extension>/`` with every
member checked to stay inside that folder.
"""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import stat
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from pathlib import Path

from edgekit.files import sha256_file, write_bytes_atomic
from edgekit.local.device.failures import DeploymentFailure
from edgekit.local.device.recipe import Artifact, ResolvedRecipe

CHUNK = 1 << 20
# Refuse archives that would unpack to more than this (zip bombs).
MAX_UNPACKED_BYTES = 8 << 30
DOWNLOAD_TIMEOUT = 60.0

UrlFor = Callable[[ResolvedRecipe, Artifact], str]


def _digest_b64(path: Path) -> str:
    """The base64 SHA-256 a recipe's artifact ``Digest`` holds."""
    return base64.b64encode(bytes.fromhex(sha256_file(path))).decode()


def _expected_digest(recipe: ResolvedRecipe, art: Artifact) -> str | None:
    if not art.digest:
        return None
    algorithm = (art.algorithm or "SHA-256").upper().replace("_", "-")
    if algorithm not in ("SHA-256", "SHA256"):
        raise DeploymentFailure(
            f"{recipe.name} {recipe.version}: artifact {art.uri} uses digest algorithm "
            f"{art.algorithm!r}; the local runtime verifies SHA-256 only",
            codes=["ARTIFACT_DOWNLOAD_ERROR", "HASHING_ALGORITHM_UNAVAILABLE"],
            types=["DEVICE_ERROR"],
        )
    return str(art.digest)


def _download(url: str, target: Path, recipe: ResolvedRecipe, art: Artifact) -> None:
    tmp = target.with_name(f".{target.name}.part")
    try:
        with (
            urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT) as response,
            tmp.open("wb") as out,
        ):
            shutil.copyfileobj(response, out, CHUNK)
    except urllib.error.HTTPError as exc:
        tmp.unlink(missing_ok=True)
        missing = exc.code in (403, 404)
        raise DeploymentFailure(
            f"{recipe.name} {recipe.version}: cannot download artifact {art.uri} "
            f"(HTTP {exc.code}{': object not found' if exc.code == 404 else ''}); "
            "upload it again and publish a new component version",
            codes=[
                "ARTIFACT_DOWNLOAD_ERROR",
                "S3_GET_OBJECT_RESOURCE_NOT_FOUND"
                if missing
                else "DOWNLOAD_GREENGRASS_ARTIFACT_ERROR",
            ],
            types=["REQUEST_ERROR" if missing else "HTTP_ERROR"],
        ) from exc
    except (urllib.error.URLError, OSError) as exc:
        tmp.unlink(missing_ok=True)
        raise DeploymentFailure(
            f"{recipe.name} {recipe.version}: cannot download artifact {art.uri}: {exc}",
            codes=["ARTIFACT_DOWNLOAD_ERROR", "NETWORK_ERROR"],
            types=["NETWORK_ERROR"],
        ) from exc
    os.replace(tmp, target)


def _mode(art: Artifact, *, directory: bool = False) -> int:
    """File mode from the recipe's Permission (owner can always write, to delete/replace)."""
    mode = stat.S_IWUSR
    if directory:
        return 0o755
    if art.read in ("OWNER", "ALL") or art.execute in ("OWNER", "ALL"):
        mode |= stat.S_IRUSR
    if art.read == "ALL" or art.execute == "ALL":
        mode |= stat.S_IRGRP | stat.S_IROTH
    if art.execute in ("OWNER", "ALL"):
        mode |= stat.S_IXUSR
    if art.execute == "ALL":
        mode |= stat.S_IXGRP | stat.S_IXOTH
    return mode


def archive_folder_name(filename: str) -> str:
    """``models.zip`` unpacks into ``models/``."""
    stem, dot, _ext = filename.rpartition(".")
    return stem if dot and stem else filename


def safe_unzip(archive: Path, dest: Path, art: Artifact, recipe: ResolvedRecipe) -> None:
    """Unpack ``archive`` into ``dest``; members escaping ``dest`` fail the deployment."""
    where = f"{recipe.name} {recipe.version}: archive {art.filename}"
    tmp = dest.with_name(f".{dest.name}.unpacking")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    base = tmp.resolve()
    try:
        with zipfile.ZipFile(archive) as zf:
            members = zf.infolist()
            total = sum(m.file_size for m in members)
            if total > MAX_UNPACKED_BYTES:
                raise DeploymentFailure(
                    f"{where} would unpack to {total} bytes, more than the limit of "
                    f"{MAX_UNPACKED_BYTES}",
                    codes=["ARTIFACT_DOWNLOAD_ERROR", "IO_UNZIP_ERROR"],
                    types=["DEVICE_ERROR"],
                )
            for member in members:
                name = member.filename.replace("\\", "/")
                target = (tmp / name).resolve()
                if name.startswith("/") or (target != base and base not in target.parents):
                    raise DeploymentFailure(
                        f"{where}: member {member.filename!r} would be written outside "
                        "the unpack folder; rebuild the archive with relative paths",
                        codes=["ARTIFACT_DOWNLOAD_ERROR", "IO_UNZIP_ERROR"],
                        types=["DEVICE_ERROR"],
                    )
                if stat.S_ISLNK(member.external_attr >> 16):
                    raise DeploymentFailure(
                        f"{where}: member {member.filename!r} is a symbolic link; "
                        "archives with links are refused",
                        codes=["ARTIFACT_DOWNLOAD_ERROR", "IO_UNZIP_ERROR"],
                        types=["DEVICE_ERROR"],
                    )
                if member.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(member) as src, target.open("wb") as out:
                    shutil.copyfileobj(src, out, CHUNK)
                os.chmod(target, _mode(art))
    except zipfile.BadZipFile as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise DeploymentFailure(
            f"{where} is not a valid ZIP file ({exc})",
            codes=["ARTIFACT_DOWNLOAD_ERROR", "IO_UNZIP_ERROR"],
            types=["DEVICE_ERROR"],
        ) from exc
    except DeploymentFailure:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for folder, dirs, _files in os.walk(tmp):
        for d in dirs:
            os.chmod(Path(folder) / d, 0o755)
    if dest.exists():
        shutil.rmtree(dest)
    os.replace(tmp, dest)


def refuse_docker_images(recipe: ResolvedRecipe) -> None:
    """A ``docker:`` artifact fails the deployment: the local device pulls no Docker images."""
    images = [a.uri for a in recipe.artifacts if a.uri.lower().startswith("docker:")]
    if images:
        raise DeploymentFailure(
            f"{recipe.name} {recipe.version}: artifact {images[0]} is a Docker image; the local "
            "device runtime does not pull Docker images (it has no Docker application manager), "
            "so this component can run only on a Greengrass core device with Docker installed. "
            "Deploy it to such a device, or package the program as an s3:// artifact; see "
            "'Docker images' in docs/compatibility.md",
            codes=["ARTIFACT_DOWNLOAD_ERROR", "DOCKER_ERROR"],
            types=["DEPENDENCY_ERROR"],
        )


def prepare_artifacts(
    recipe: ResolvedRecipe, artifacts_dir: Path, unarchived_dir: Path, url_for: UrlFor
) -> None:
    """Make every artifact of ``recipe`` present and verified; idempotent."""
    refuse_docker_images(recipe)
    artifacts_dir.mkdir(parents=True, exist_ok=True)
    # The nucleus creates {artifacts:decompressedPath} whenever it resolves, ZIP or not:
    # components list it or write into it (as they do into {artifacts:path}).
    unarchived_dir.mkdir(parents=True, exist_ok=True)
    names = [a.filename for a in recipe.artifacts]
    if len(set(names)) != len(names):
        raise DeploymentFailure(
            f"{recipe.name} {recipe.version}: two artifacts share a file name ({names}); "
            "each artifact of a manifest needs a unique file name",
            codes=["RECIPE_PARSE_ERROR"],
            types=["COMPONENT_RECIPE_ERROR"],
        )
    for art in recipe.artifacts:
        target = artifacts_dir / art.filename
        expected = _expected_digest(recipe, art)
        marker = artifacts_dir / f".{art.filename}.verified"
        if (
            target.exists()
            and marker.exists()
            and (expected is None or marker.read_text() == expected)
        ):
            pass  # downloaded and verified by an earlier deployment
        else:
            marker.unlink(missing_ok=True)
            if target.exists():
                with contextlib.suppress(OSError):
                    os.chmod(target, 0o600)
                target.unlink()
            _download(url_for(recipe, art), target, recipe, art)
            actual = _digest_b64(target)
            if expected is not None and actual != expected:
                target.unlink(missing_ok=True)
                raise DeploymentFailure(
                    f"{recipe.name} {recipe.version}: artifact {art.filename} failed its "
                    f"SHA-256 check (recipe {expected}, downloaded {actual}); the object in S3 "
                    "changed after the component version was created: publish a new version",
                    codes=["ARTIFACT_DOWNLOAD_ERROR", "ARTIFACT_CHECKSUM_MISMATCH"],
                    types=["COMPONENT_RECIPE_ERROR"],
                )
            marker.write_text(expected or actual)
        os.chmod(target, _mode(art))
        if art.unarchive == "ZIP":
            dest = unarchived_dir / archive_folder_name(art.filename)
            done = unarchived_dir / f".{dest.name}.unpacked"
            if not (dest.is_dir() and done.exists() and done.read_text() == marker.read_text()):
                unarchived_dir.mkdir(parents=True, exist_ok=True)
                done.unlink(missing_ok=True)
                safe_unzip(target, dest, art, recipe)
                done.write_text(marker.read_text())
        elif art.unarchive not in ("NONE", ""):
            raise DeploymentFailure(
                f"{recipe.name} {recipe.version}: artifact {art.filename} has Unarchive "
                f"{art.unarchive!r}; use ZIP or NONE",
                codes=["RECIPE_PARSE_ERROR"],
                types=["COMPONENT_RECIPE_ERROR"],
            )


def stage_local_artifacts(recipe: ResolvedRecipe, source: Path, artifacts_dir: Path) -> None:
    """A local deployment's artifacts: every file under ``source``
    (``<artifactDir>/<name>/<version>/``) copied into ``artifacts_dir``, each artifact
    the recipe lists marked verified so ``prepare_artifacts`` does not download it.

    A listed artifact whose recipe ``Digest`` does not match the local file fails.
    """
    if not source.is_dir():
        return
    artifacts_dir.mkdir(parents=True, exist_ok=True)
    for path in sorted(source.rglob("*")):
        if not path.is_file():
            continue
        target = artifacts_dir / path.relative_to(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(target, path.read_bytes(), mode=path.stat().st_mode & 0o777)
    for art in recipe.artifacts:
        target = artifacts_dir / art.filename
        if not target.is_file():
            continue  # not in the artifact folder: downloaded like any artifact
        actual = _digest_b64(target)
        expected = _expected_digest(recipe, art)
        if expected is not None and actual != expected:
            raise DeploymentFailure(
                f"{recipe.name} {recipe.version}: artifact {source / art.filename} does not "
                f"match the recipe's Digest (recipe {expected}, file {actual}); update the "
                "Digest or remove it from the local recipe",
                codes=["ARTIFACT_CHECKSUM_MISMATCH"],
                types=["COMPONENT_RECIPE_ERROR"],
            )
        (artifacts_dir / f".{art.filename}.verified").write_text(actual)


def remove_version(artifacts_dir: Path, unarchived_dir: Path) -> None:
    """Delete one component version's artifacts (read-only files included)."""
    for folder in (artifacts_dir, unarchived_dir):
        if folder.exists():
            shutil.rmtree(folder, ignore_errors=True)
