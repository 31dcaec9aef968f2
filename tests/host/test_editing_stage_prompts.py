"""SD1.5 edit stages from the caption text, on the real host: LLMGA Long Prompt Encode (sd15) → Instruction Edit.

The per-stage rules are checked against the LPW layouts in tests/core/editing/test_stage_prompts.py; here
the same encodings must come out of ComfyUI's CLIP, survive ControlNet, and reach the edit's stages.
"""

from __future__ import annotations

from tests.fixtures.tiny_diffusers import tiny_diffusers_models
from tests.harness.host import tiny_sd_models
from tests.harness.inprocess import run_in_comfy

SNIPPET = """
import importlib
torch.set_num_threads(1)
import comfy.sd, comfy.controlnet
ed = importlib.import_module("llmga_pack.nodes.editing")
core = importlib.import_module("llmga_pack.llmga_core.editing")
key = importlib.import_module("llmga_pack.llmga_core.editing.stage_prompts").STAGE_KEY
lpw = importlib.import_module("llmga_pack.nodes.lpw").LLMGALongPromptEncode
model, clip, vae, _ = comfy.sd.load_checkpoint_guess_config(MODELS["ckpt"], output_vae=True, output_clipvision=False)
def encode(text):
    out = lpw.execute(clip=clip, positive=text, negative="", layout="sd15", max_chunks=4, width=1024, height=1024,
                      crop_w=0, crop_h=0, target_width=1024, target_height=1024)
    return out.args if hasattr(out, "args") else out.result
source_text = "a (red:1.3) sofa " + " ".join(["cat"] * 88)  # 90+ tokens, weighted
source, _ = encode(source_text)
target, negative = encode("a red sofa with a dog")
image = torch.rand(1, 64, 64, 3, generator=torch.Generator().manual_seed(0))
control = comfy.controlnet.load_controlnet(MODELS["controlnet"])
target_cn, negative_cn = comfy_nodes.ControlNetApplyAdvanced().apply_controlnet(
    target, negative, control, image, 1.0, 0.0, 1.0, vae=vae)
RESULT["kept_through_controlnet"] = key in target_cn[0][1] and key in negative_cn[0][1]
conds = core.stage_conditionings(source, target_cn, negative_cn, ed.check_edit_model(model))
RESULT["shapes"] = {k: list(v[0][0].shape) for k, v in conds.items()}
RESULT["control_kept"] = "control" in conds["positive"][0][1] and "control" in conds["mask_target"][0][1]
ids = [49406] + list(clip.tokenizer.clip_l.tokenizer(source_text)["input_ids"][1:77])
plain = clip.encode_from_tokens({"l": [[(i, 1.0) for i in ids]]})
RESULT["inversion_vs_plain_ids"] = (conds["source"][0][0] - plain).abs().max().item()
RESULT["inversion_has_eos"] = 49407 in ids
RESULT["inversion_vs_weighted_cut"] = (conds["source"][0][0] - source[0][0][:, :77]).abs().max().item()
out = ed.LLMGAInstructionEdit.execute(model, vae, image, source, target_cn, negative_cn, 3, 2, 25, 3.5, 7.5)
out = out.args if hasattr(out, "args") else out.result
RESULT["edited_shape"] = list(out[0].shape)
"""


def test_long_prompt_encode_carries_the_stage_encodings_to_the_edit() -> None:
    sd = tiny_sd_models()
    result = run_in_comfy(
        SNIPPET,
        {
            "ckpt": sd / "checkpoints" / "tiny_sd15.safetensors",
            "controlnet": sd / "controlnet" / "tiny_controlnet.safetensors",
        },
    )
    assert result["kept_through_controlnet"] and result["control_kept"], result
    shapes = result["shapes"]
    assert shapes["source"] == shapes["inversion_negative"] == [1, 77, 768], shapes
    assert shapes["mask_target"] == shapes["mask_source"] == [1, 154, 768], shapes  # 2 chunks: the source's
    assert shapes["positive"] == shapes["negative"] == [1, 77, 768], shapes
    assert not result["inversion_has_eos"]  # BOS + 76 ids of a 90+ token caption: the EOS is cut off
    assert result["inversion_vs_plain_ids"] <= 1e-5, result
    assert result["inversion_vs_weighted_cut"] > 1e-3, result  # what the tensor cut gave before
    assert result["edited_shape"] == [1, 64, 64, 3]


POSTERIOR = """
import importlib, comfy.sd, comfy.utils
ed = importlib.import_module("llmga_pack.nodes.edit_sampling")
core = importlib.import_module("llmga_pack.llmga_core.editing")
vae = comfy.sd.VAE(sd=comfy.utils.load_torch_file(MODELS["vae"]))
image = torch.rand(1, 64, 64, 3, generator=torch.Generator().manual_seed(0))
latent, posterior = ed.encode_with_posterior(vae, image)
RESULT["found"] = posterior is not None
mean, logvar = posterior
RESULT["mean_vs_mode"] = (mean - latent.float().cpu()).abs().max().item()
RESULT["logvar"] = [logvar.min().item(), logvar.max().item()]
draws = core.posterior_samples(mean, torch.zeros_like(logvar), 10, torch.Generator().manual_seed(1))
again = core.posterior_samples(mean, torch.zeros_like(logvar), 10, torch.Generator().manual_seed(1))
RESULT["shape"] = list(draws.shape)
RESULT["unit_std"] = (draws - mean[:, None]).std().item()
RESULT["same_seed"] = torch.equal(draws, again)
"""


def test_the_mask_stage_gets_the_vae_posterior_not_only_its_mode() -> None:
    """AutoencoderKL (the tiny diffusers folder's, as LLMGA Checkpoint Loader loads it): moments are captured."""
    vae = tiny_diffusers_models() / "diffusers" / "llmga-sd15-t2i" / "vae" / "diffusion_pytorch_model.safetensors"
    result = run_in_comfy(POSTERIOR, {"vae": vae})
    assert result["found"], result
    assert result["mean_vs_mode"] <= 1e-5, result  # ComfyUI's encode returns the posterior's mode
    assert result["logvar"] == [-30.0, -30.0] or result["logvar"][1] <= -29.0, result  # the fixture pins it
    assert result["shape"] == [1, 10, 4, 8, 8] and result["same_seed"], result
    assert 0.9 < result["unit_std"] < 1.1, result
