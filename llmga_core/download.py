"""Fetch the LLMGA weights a user names into ComfyUI's model folders (``make models NAMES=...``).

    python -m llmga_core.download --list
    python -m llmga_core.download [--models-dir DIR] NAME [NAME ...]

Hub downloads go through huggingface_hub (resumable, with progress) and take only what the loaders read.
Offline, or for the DiffRIR weights that live on Google Drive, it prints exactly what to fetch and where
to put it. Nothing is downloaded unless asked for by name.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path

from .catalog import CATALOG, CatalogEntry, find


def default_models_dir() -> Path:
    """ComfyUI/models when the pack sits in ComfyUI/custom_nodes, else the embedded dev host's."""
    pack = Path(__file__).resolve().parents[1]
    if pack.parent.name == "custom_nodes":
        return pack.parent.parent / "models"
    recorded = pack / ".cache" / "comfyui_path"
    if recorded.exists():
        return Path(recorded.read_text().strip()) / "models"
    return Path.cwd() / "models"


def table() -> str:
    rows = [f"{'name':42} {'size':8} {'folder':16} tasks"]
    rows += [f"{e.name:42} {e.size:8} {e.folder:16} {e.tasks}" for e in CATALOG]
    return "\n".join(rows)


def instructions(entry: CatalogEntry, models_dir: Path) -> str:
    target = models_dir / entry.target
    if entry.repo_id is None:
        return (
            f"{entry.name}: download the DiffRIR x1 S2 GAN checkpoint (net_g_latest.pth of the x1 model) from\n"
            f"  {entry.url}\n  and save it as {target}"
        )
    patterns = " ".join(f"--include '{p}'" for p in entry.patterns)
    return (
        f"{entry.name}: download {entry.url} into {target}/\n"
        f"  e.g. hf download {entry.repo_id} {patterns} --local-dir {target}"
    )


_OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")  # huggingface_hub honours either


def _offline_variable() -> str | None:
    """The environment variable that puts the hub in offline mode, if one does."""
    for name in _OFFLINE_VARIABLES:
        if os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on"):
            return name
    return None


def _offline() -> bool:
    return _offline_variable() is not None


def download(entry: CatalogEntry, models_dir: Path) -> Path:
    from huggingface_hub import snapshot_download

    target = models_dir / entry.target
    target.mkdir(parents=True, exist_ok=True)
    snapshot_download(repo_id=entry.repo_id, local_dir=target, allow_patterns=list(entry.patterns))
    return target


class DownloadError(Exception):
    """A fetch that did not finish; the message says what happened and what to do (nothing half-written is
    left where a loader would see it)."""


def staging_dir(target: Path) -> Path:
    """Where ``target`` is downloaded to before it is moved into place: a hidden sibling, which no model
    listing shows (model_folders skips dot-names), so a half-downloaded folder is never offered as loadable.
    huggingface_hub keeps its resumable ``*.incomplete`` files inside it."""
    return target.parent / f".{target.name}.download"


def _needed_files(entry: CatalogEntry, endpoint: str | None) -> tuple[str, list[tuple[str, int | None, str | None]]]:
    """The commit and (file, size, sha256 where LFS) of every file of ``entry`` its loader reads."""
    from huggingface_hub import HfApi
    from huggingface_hub.utils import filter_repo_objects

    info = HfApi(endpoint=endpoint).model_info(entry.repo_id, files_metadata=True)
    siblings = {s.rfilename: s for s in info.siblings or ()}
    names = sorted(filter_repo_objects(list(siblings), allow_patterns=list(entry.patterns)))
    files = [(n, siblings[n].size, siblings[n].lfs.sha256 if siblings[n].lfs else None) for n in names]
    return info.sha, files


def _sha256(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class _NotOnHub(Exception):
    pass


def _get_file(
    url: str,
    path: Path,
    size: int | None,
    headers: dict[str, str],
    on_bytes: Callable[[int], None],
    check_cancel: Callable[[], None] | None,
    attempts: int = 5,
) -> None:
    """Stream ``url`` to ``path`` through ``path.part``, resuming from what an earlier try left there."""
    import http.client
    import urllib.error
    import urllib.request

    part = path.with_name(path.name + ".part")
    for attempt in range(attempts):
        have = part.stat().st_size if part.exists() else 0
        if size is not None and have > size:
            part.unlink()
            have = 0
        if size is not None and have == size:
            break
        wanted = dict(headers, **({"Range": f"bytes={have}-"} if have else {}))
        request = urllib.request.Request(url, headers=wanted)  # noqa: S310 (the hub's URL)
        try:
            with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310 (the hub's URL)
                if have and response.status != 206:  # the server ignored Range: start over
                    have = 0
                on_bytes(have)
                with open(part, "ab" if have else "wb") as out:
                    while chunk := response.read(1 << 20):
                        if check_cancel is not None:
                            check_cancel()  # what arrived so far stays in .part for the next pick
                        out.write(chunk)
                        on_bytes(len(chunk))
            if size is None or part.stat().st_size == size:
                break
        except urllib.error.HTTPError as err:
            if err.code == 404:
                raise _NotOnHub(url) from None
            raise
        except (http.client.HTTPException, ConnectionError, TimeoutError):  # dropped: resume from .part
            if attempt == attempts - 1:
                raise
    else:
        raise DownloadError(f"{url}: the transfer kept breaking off after {attempts} tries")
    part.replace(path)


def fetch(
    entry: CatalogEntry,
    models_dir: Path,
    progress: Callable[[int, int], None] | None = None,
    check_cancel: Callable[[], None] | None = None,
    endpoint: str | None = None,
) -> Path:
    """Download ``entry`` into ``models_dir/<folder>/<name>`` and return that folder.

    Files stream into :func:`staging_dir` as ``*.part`` (a dropped connection, a Cancel or a crash resume
    from there on the next call), every LFS file is checked against the hub's sha256, and only a complete,
    verified folder is renamed into place. ``progress(done_bytes, total_bytes)`` follows the bytes;
    ``check_cancel()`` may raise to stop. ``endpoint`` defaults to huggingface_hub's (``HF_ENDPOINT``).
    """
    target = models_dir / entry.target
    if target.is_dir():
        return target
    how = instructions(entry, models_dir)
    if entry.repo_id is None:
        raise DownloadError(f"{entry.name} is not on the Hugging Face Hub; fetch it by hand.\n{how}")
    offline = _offline_variable()
    if offline is not None:
        raise DownloadError(f"{offline} is set, so nothing is downloaded (unset it to allow downloads).\n{how}")
    import http.client
    import urllib.error

    from huggingface_hub import hf_hub_url
    from huggingface_hub.errors import RepositoryNotFoundError
    from huggingface_hub.utils import build_hf_headers

    try:
        commit, files = _needed_files(entry, endpoint)
    except RepositoryNotFoundError:
        raise DownloadError(f"{entry.repo_id} was not found on the hub (404).\n{how}") from None
    except Exception as err:  # offline, DNS, proxy: say what to fetch by hand
        raise DownloadError(f"could not reach the hub ({type(err).__name__}: {err}).\n{how}") from None
    if not files:
        raise DownloadError(f"{entry.repo_id} has none of the files the loader needs.\n{how}")
    total = sum(size or 0 for _, size, _ in files)
    done = 0
    staging = staging_dir(target)
    headers = build_hf_headers()

    def on_bytes(n: int) -> None:
        nonlocal done
        done += n
        if progress is not None:
            progress(min(done, total), total)

    for name, size, sha256 in files:
        path = staging / name
        path.parent.mkdir(parents=True, exist_ok=True)
        start = done
        if not path.exists():
            url = hf_hub_url(entry.repo_id, name, revision=commit, endpoint=endpoint)
            try:
                _get_file(url, path, size, headers, on_bytes, check_cancel)
            except _NotOnHub:
                raise DownloadError(f"{entry.repo_id} has no {name} (404).\n{how}") from None
            except (urllib.error.URLError, http.client.HTTPException, OSError) as err:  # Cancel's passes through
                raise DownloadError(f"{name} of {entry.repo_id}: {type(err).__name__}: {err}.\n{how}") from None
            if sha256 is not None and _sha256(path) != sha256:
                path.unlink()
                raise DownloadError(
                    f"{name} of {entry.repo_id} arrived corrupted (sha256 mismatch); it was deleted, pick the "
                    f"model again to download it afresh.\n{how}"
                )
        done = start + (size if size is not None else path.stat().st_size)
        if progress is not None:
            progress(min(done, total), total)
    staging.rename(target)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m llmga_core.download", description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="model names from --list")
    parser.add_argument("--list", action="store_true", help="show the models that can be fetched")
    parser.add_argument("--models-dir", type=Path, default=None, help="ComfyUI's models directory")
    opts = parser.parse_args(argv)
    if opts.list or not opts.names:
        print(table())
        return 0
    try:
        entries = [find(name) for name in opts.names]
    except KeyError as err:
        print(err.args[0], file=sys.stderr)
        return 2
    models_dir = (opts.models_dir or default_models_dir()).resolve()
    status = 0
    for entry in entries:
        if entry.repo_id is None or _offline():
            print(instructions(entry, models_dir))
            status = status or (0 if entry.repo_id is None else 3)
            continue
        try:
            print(f"{entry.name}: {download(entry, models_dir)}")
        except Exception as err:  # network down, gated repo, disk full: say what to do instead
            print(f"{entry.name}: download failed ({type(err).__name__}: {err}).\n{instructions(entry, models_dir)}")
            status = 3
    return status


if __name__ == "__main__":
    raise SystemExit(main())
