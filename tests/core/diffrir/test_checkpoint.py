"""Loading released-style .pth files and safetensors strictly, and refusing everything else clearly."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from llmga_core.diffrir import (
    DiffRIRCheckpointError,
    check_diffrir_state_dict,
    load_diffrir,
    read_diffrir_state_dict,
)
from llmga_core.diffrir.prior import SCHEDULE_BUFFERS

CHECKED = ("G.patch_embed.proj.weight", "condition.E.0.weight", "denoise.resmlp.0.weight", "G.tail.1.bias")


def _assert_read(path: Path, sd: dict[str, torch.Tensor]) -> None:
    """The reader returns the full 615-key dict with the expected tensors (no network built)."""
    got = read_diffrir_state_dict(path)
    assert len(got) == 615
    for key in CHECKED:
        assert torch.equal(got[key], sd[key])
    assert torch.equal(got["diffusion.condition.E.0.weight"], sd["condition.E.0.weight"])
    assert torch.equal(got["diffusion.betas"], sd["diffusion.betas"])


def _assert_weights(net: torch.nn.Module, sd: dict[str, torch.Tensor]) -> None:
    loaded = net.state_dict()
    for key in CHECKED:
        assert torch.equal(loaded[key], sd[key].float())
    assert torch.equal(loaded["diffusion.condition.E.0.weight"], sd["condition.E.0.weight"].float())
    assert not any(p.requires_grad for p in net.parameters())
    assert not net.training


@pytest.fixture(scope="module")
def pth_dir(tmp_path_factory: pytest.TempPathFactory, weights) -> Path:
    d = tmp_path_factory.mktemp("diffrir_ckpt")
    # BasicSR layout; "params" differs from "params_ema" in the checked tensors (others shared, saved once)
    params = dict(weights)
    for key in CHECKED:
        params[key] = -weights[key]
    params["diffusion.condition.E.0.weight"] = params["condition.E.0.weight"]
    params["diffusion.model.resmlp.0.weight"] = params["denoise.resmlp.0.weight"]
    torch.save({"params": params, "params_ema": weights}, d / "released.pth")
    return d


def test_released_layout_loads_params_ema(pth_dir, weights) -> None:
    _assert_weights(load_diffrir(pth_dir / "released.pth"), weights)


@pytest.fixture(scope="module")
def half(weights) -> dict[str, torch.Tensor]:
    """fp16 copy (half the bytes to write; also proves fp16 files load), sharing duplicates like torch."""
    out = {k: v.half() for k, v in weights.items() if not k.startswith("diffusion.")}
    for key in weights:
        if key.startswith("diffusion.condition."):
            out[key] = out[key.removeprefix("diffusion.")]
        elif key.startswith("diffusion.model."):
            out[key] = out["denoise." + key.removeprefix("diffusion.model.")]
        elif key.startswith("diffusion."):
            out[key] = weights[key]
    return out


def test_params_only_and_bare_and_module_prefix(tmp_path, half) -> None:
    torch.save({"params": half}, tmp_path / "p.pth")
    _assert_read(tmp_path / "p.pth", half)
    torch.save(half, tmp_path / "bare.pt")
    _assert_read(tmp_path / "bare.pt", half)
    torch.save({"module." + k: v for k, v in half.items()}, tmp_path / "dp.pth")
    _assert_read(tmp_path / "dp.pth", half)


def test_safetensors_full_and_deduplicated(tmp_path, weights, half) -> None:
    # what safetensors' save_model leaves: no shared duplicates, and here also no schedule buffers
    dedup = {k: v for k, v in weights.items() if not k.startswith("diffusion.")}
    save_file(dedup, tmp_path / "dedup.safetensors")
    net = load_diffrir(tmp_path / "dedup.safetensors")
    _assert_weights(net, weights)
    assert torch.equal(net.state_dict()["diffusion.betas"], weights["diffusion.betas"])
    full = {k: v.clone().contiguous() for k, v in half.items()}  # every key, fp16, duplicates stored twice
    save_file(full, tmp_path / "full.safetensors")
    _assert_read(tmp_path / "full.safetensors", half)


def test_duplicate_only_copy_fills_its_twin(tmp_path, half) -> None:
    sd = {k: v for k, v in half.items() if not k.startswith(("condition.", "denoise."))}
    torch.save(sd, tmp_path / "twins.pth")
    _assert_read(tmp_path / "twins.pth", half)


def _error(tmp_path: Path, obj: object, name: str = "x.pth") -> str:
    path = tmp_path / name
    torch.save(obj, path)
    with pytest.raises(DiffRIRCheckpointError) as info:
        read_diffrir_state_dict(path)
    return str(info.value)


def _sd_error(sd: dict[str, torch.Tensor]) -> str:
    """The same validation as a file load, without writing 100 MB files."""
    with pytest.raises(DiffRIRCheckpointError) as info:
        check_diffrir_state_dict(sd, "x.pth")
    return str(info.value)


def test_other_model_names_expected_kind_and_keys(tmp_path) -> None:
    msg = _error(tmp_path, {"params_ema": {"model.diffusion_model.input_blocks.0.0.weight": torch.zeros(3)}})
    assert "DiffRIR x1" in msg and "615" in msg
    assert "missing keys" in msg and "G.patch_embed.proj.weight" in msg
    assert "1 unexpected keys" in msg and "model.diffusion_model.input_blocks.0.0.weight" in msg
    assert isinstance(DiffRIRCheckpointError("x"), ValueError)


def test_x2_and_stage1_and_shape_mismatch(weights) -> None:
    x2 = dict(weights)
    x2["G.patch_embed.proj.weight"] = torch.zeros(64, 60, 3, 3)
    assert "x2" in _sd_error(x2)
    s1 = dict(weights)
    s1["condition.E.0.weight"] = s1["diffusion.condition.E.0.weight"] = torch.zeros(64, 144, 3, 3)
    assert "stage-1" in _sd_error(s1)
    bad = dict(weights)
    bad["G.tail.1.bias"] = torch.zeros(4)
    msg = _sd_error(bad)
    assert "G.tail.1.bias" in msg and "[4]" in msg and "[3]" in msg


def test_extra_key_and_damaged_duplicates_and_schedule(weights) -> None:
    extra = dict(weights)
    extra["G.extra.weight"] = torch.zeros(1)
    assert "G.extra.weight" in _sd_error(extra)
    twins = dict(weights)
    twins["diffusion.model.resmlp.0.bias"] = torch.zeros(256)
    assert "differs from 'denoise.resmlp.0.bias'" in _sd_error(twins)
    sched = dict(weights)
    sched["diffusion.betas"] = torch.linspace(1e-4, 2e-2, 4)
    assert "diffusion.betas" in _sd_error(sched)
    assert SCHEDULE_BUFFERS[0] == "betas"


class _Evil:
    def __reduce__(self):
        return (print, ("unpickled!",))


def test_refuses_non_tensor_pickles(tmp_path) -> None:
    msg = _error(tmp_path, {"params_ema": {"G.tail.1.bias": torch.zeros(3)}, "net": _Evil()})
    assert "other than tensors" in msg
    assert "not a state dict" in _error(tmp_path, [1, 2, 3])
    assert "not named tensors" in _error(tmp_path, {"params_ema": {"a": 1}})


def test_corrupt_and_truncated_files(tmp_path, pth_dir) -> None:
    data = (pth_dir / "released.pth").read_bytes()
    (tmp_path / "trunc.pth").write_bytes(data[: len(data) // 3])
    (tmp_path / "junk.pth").write_bytes(b"this is not a checkpoint" * 10)
    (tmp_path / "empty.pth").write_bytes(b"")
    save_file({"x": torch.zeros(100)}, tmp_path / "t.safetensors")
    st = (tmp_path / "t.safetensors").read_bytes()
    (tmp_path / "trunc.safetensors").write_bytes(st[:-50])
    (tmp_path / "text.safetensors").write_bytes(b"hello")
    for name in ("trunc.pth", "junk.pth", "empty.pth", "trunc.safetensors", "text.safetensors"):
        with pytest.raises(DiffRIRCheckpointError) as info:
            read_diffrir_state_dict(tmp_path / name)
        text = str(info.value)
        assert text.startswith(name), text
        assert "corrupt" in text or "not a" in text, text
        assert info.value.__cause__ is None and info.value.__suppress_context__


def test_missing_file_and_unknown_suffix(tmp_path) -> None:
    with pytest.raises(DiffRIRCheckpointError, match="no such file"):
        read_diffrir_state_dict(tmp_path / "nope.pth")
    (tmp_path / "w.onnx").write_bytes(b"x")
    with pytest.raises(DiffRIRCheckpointError, match="unknown file type"):
        read_diffrir_state_dict(tmp_path / "w.onnx")


def test_integer_and_non_finite_weights_are_named(weights) -> None:
    as_int = {k: v.to(torch.int32) for k, v in weights.items()}  # a wrongly converted file
    msg = _sd_error(as_int)
    assert "is stored as int32" in msg and "schedule" not in msg
    poisoned = dict(weights)
    norm = next(k for k in poisoned if "norm" in k and k.endswith("weight"))
    poisoned[norm] = poisoned[norm].clone()
    poisoned[norm][0] = float("nan")
    assert f"{norm} holds 1 NaN or infinite values" in _sd_error(poisoned)
