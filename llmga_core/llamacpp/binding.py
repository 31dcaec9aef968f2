"""ctypes declarations of llama.cpp's C API, as built into the ``xllamacpp`` wheel (no compiler needed).

The wheel's extension module is an ordinary shared library that exports llama.cpp's C functions. Struct
layouts change between llama.cpp builds (fields are inserted mid-struct), and a wrong layout corrupts
memory rather than failing, so the binding is tied to one wheel version, :data:`XLLAMACPP_VERSION`, and
:func:`check_layouts` compares our struct sizes and a few default values with what the library returns
before anything is loaded. The layouts follow ``include/llama.h`` of that wheel's source distribution
(``thirdparty/llama.cpp``).
"""

from __future__ import annotations

import ctypes
import importlib.metadata
import importlib.util
import sys
import threading
from ctypes import (
    CFUNCTYPE,
    POINTER,
    Structure,
    c_bool,
    c_char_p,
    c_float,
    c_int8,
    c_int32,
    c_int64,
    c_size_t,
    c_uint32,
    c_uint64,
    c_void_p,
)
from pathlib import Path

from ..errors import LLMGAInputError

__all__ = [
    "XLLAMACPP_VERSION",
    "LlamaBatch",
    "LlamaContextParams",
    "LlamaModelParams",
    "check_layouts",
    "library",
    "pip_command",
]

XLLAMACPP_VERSION = "2026.10.11549"  # the wheel whose llama.h the structs below follow

GGML_TYPE_F32 = 0
GGML_TYPE_F16 = 1
FLASH_ATTN_AUTO, FLASH_ATTN_DISABLED = -1, 0

llama_token = c_int32
abort_callback_t = CFUNCTYPE(c_bool, c_void_p)
log_callback_t = CFUNCTYPE(None, c_int32, c_char_p, c_void_p)


class LlamaModelParams(Structure):
    _fields_ = [
        ("devices", c_void_p),
        ("tensor_buft_overrides", c_void_p),
        ("n_gpu_layers", c_int32),
        ("split_mode", c_int32),
        ("load_mode", c_int32),
        ("lazy_mode", c_int32),
        ("main_gpu", c_int32),
        ("tensor_split", c_void_p),
        ("progress_callback", c_void_p),
        ("progress_callback_user_data", c_void_p),
        ("kv_overrides", c_void_p),
        ("vocab_only", c_bool),
        ("check_tensors", c_bool),
        ("use_extra_bufts", c_bool),
        ("no_host", c_bool),
        ("no_alloc", c_bool),
        ("load_mtp", c_bool),
    ]


class LlamaContextParams(Structure):
    _fields_ = [
        ("n_ctx", c_uint32),
        ("n_batch", c_uint32),
        ("n_ubatch", c_uint32),
        ("n_seq_max", c_uint32),
        ("n_rs_seq", c_uint32),
        ("n_outputs_max", c_uint32),
        ("n_outputs_max_per_seq", c_uint32),
        ("n_threads", c_int32),
        ("n_threads_batch", c_int32),
        ("ctx_type", c_int32),
        ("rope_scaling_type", c_int32),
        ("pooling_type", c_int32),
        ("attention_type", c_int32),
        ("flash_attn_type", c_int32),
        ("rope_freq_base", c_float),
        ("rope_freq_scale", c_float),
        ("yarn_ext_factor", c_float),
        ("yarn_attn_factor", c_float),
        ("yarn_beta_fast", c_float),
        ("yarn_beta_slow", c_float),
        ("yarn_orig_ctx", c_uint32),
        ("defrag_thold", c_float),
        ("cb_eval", c_void_p),
        ("cb_eval_user_data", c_void_p),
        ("type_k", c_int32),
        ("type_v", c_int32),
        ("moe_cache_size", c_size_t),
        ("abort_callback", c_void_p),
        ("abort_callback_data", c_void_p),
        ("embeddings", c_bool),
        ("offload_kqv", c_bool),
        ("no_perf", c_bool),
        ("op_offload", c_bool),
        ("swa_full", c_bool),
        ("kv_unified", c_bool),
        ("samplers", c_void_p),
        ("n_samplers", c_size_t),
        ("ctx_other", c_void_p),
    ]


class LlamaBatch(Structure):
    _fields_ = [
        ("n_tokens", c_int32),
        ("token", POINTER(c_int32)),
        ("embd", POINTER(c_float)),
        ("pos", POINTER(c_int32)),
        ("n_seq_id", POINTER(c_int32)),
        ("seq_id", POINTER(POINTER(c_int32))),
        ("logits", POINTER(c_int8)),
    ]


class SamplerChainParams(Structure):
    _fields_ = [("no_perf", c_bool)]


# name -> (restype, argtypes)
_PROTOTYPES: dict[str, tuple[object, list[object]]] = {
    "llama_backend_init": (None, []),
    "llama_log_set": (None, [log_callback_t, c_void_p]),
    "llama_supports_gpu_offload": (c_bool, []),
    "llama_model_default_params": (LlamaModelParams, []),
    "llama_context_default_params": (LlamaContextParams, []),
    "llama_sampler_chain_default_params": (SamplerChainParams, []),
    "llama_model_load_from_file": (c_void_p, [c_char_p, LlamaModelParams]),
    "llama_model_free": (None, [c_void_p]),
    "llama_init_from_model": (c_void_p, [c_void_p, LlamaContextParams]),
    "llama_free": (None, [c_void_p]),
    "llama_model_get_vocab": (c_void_p, [c_void_p]),
    "llama_model_n_embd": (c_int32, [c_void_p]),
    "llama_model_n_embd_inp": (c_int32, [c_void_p]),
    "llama_model_n_ctx_train": (c_int32, [c_void_p]),
    "llama_model_size": (c_uint64, [c_void_p]),
    "llama_model_desc": (c_int32, [c_void_p, c_char_p, c_size_t]),
    "llama_model_meta_val_str": (c_int32, [c_void_p, c_char_p, c_char_p, c_size_t]),
    "llama_n_ctx": (c_uint32, [c_void_p]),
    "llama_get_memory": (c_void_p, [c_void_p]),
    "llama_memory_clear": (None, [c_void_p, c_bool]),
    "llama_vocab_n_tokens": (c_int32, [c_void_p]),
    "llama_vocab_bos": (llama_token, [c_void_p]),
    "llama_vocab_get_add_bos": (c_bool, [c_void_p]),
    "llama_vocab_is_eog": (c_bool, [c_void_p, llama_token]),
    "llama_tokenize": (c_int32, [c_void_p, c_char_p, c_int32, POINTER(llama_token), c_int32, c_bool, c_bool]),
    "llama_token_to_piece": (c_int32, [c_void_p, llama_token, c_char_p, c_int32, c_int32, c_bool]),
    "llama_batch_init": (LlamaBatch, [c_int32, c_int32, c_int32]),
    "llama_batch_free": (None, [LlamaBatch]),
    "llama_decode": (c_int32, [c_void_p, LlamaBatch]),
    "llama_set_abort_callback": (None, [c_void_p, c_void_p, c_void_p]),
    "llama_set_n_threads": (None, [c_void_p, c_int32, c_int32]),
    "llama_attach_threadpool": (None, [c_void_p, c_void_p, c_void_p]),
    "ggml_threadpool_params_init": (None, [c_void_p, c_int32]),  # fills a caller buffer (no layout needed)
    # (type, src floats, dst, first row's element index, rows, elements per row, importance matrix or NULL)
    "ggml_quantize_chunk": (c_size_t, [c_int32, c_void_p, c_void_p, c_int64, c_int64, c_int64, c_void_p]),
    "ggml_row_size": (c_size_t, [c_int32, c_int64]),
    "ggml_threadpool_new": (c_void_p, [c_void_p]),
    "ggml_threadpool_free": (None, [c_void_p]),
    "llama_get_logits_ith": (POINTER(c_float), [c_void_p, c_int32]),
    "llama_sampler_chain_init": (c_void_p, [SamplerChainParams]),
    "llama_sampler_chain_add": (None, [c_void_p, c_void_p]),
    "llama_sampler_init_greedy": (c_void_p, []),
    "llama_sampler_init_dist": (c_void_p, [c_uint32]),
    "llama_sampler_init_top_k": (c_void_p, [c_int32]),
    "llama_sampler_init_top_p": (c_void_p, [c_float, c_size_t]),
    "llama_sampler_init_temp": (c_void_p, [c_float]),
    "llama_sampler_init_penalties": (c_void_p, [c_int32, c_int32, c_float, c_float, c_float]),
    "llama_sampler_sample": (llama_token, [c_void_p, c_void_p, c_int32]),
    "llama_sampler_free": (None, [c_void_p]),
}

_LOCK = threading.Lock()
_LIB: ctypes.CDLL | None = None


def pip_command() -> str:
    """The install command for the Python that runs this process (ComfyUI's own, portable or venv)."""
    return f'"{sys.executable}" -m pip install xllamacpp=={XLLAMACPP_VERSION}'


def _library_path() -> Path:
    spec = importlib.util.find_spec("xllamacpp")
    if spec is None or not spec.submodule_search_locations:
        raise LLMGAInputError(
            f"The GGUF loader runs llama.cpp from the xllamacpp wheel, which is not installed: run {pip_command()} "
            "and restart ComfyUI."
        )
    version = importlib.metadata.version("xllamacpp")
    if version != XLLAMACPP_VERSION:
        raise LLMGAInputError(
            f"xllamacpp {version} is installed, but this pack binds the llama.cpp C API of xllamacpp "
            f"{XLLAMACPP_VERSION} (struct layouts differ between builds): run {pip_command()} and restart ComfyUI."
        )
    folder = Path(next(iter(spec.submodule_search_locations)))
    found = sorted(folder.glob("xllamacpp*.so")) + sorted(folder.glob("xllamacpp*.pyd"))
    if not found:
        raise LLMGAInputError(f"No llama.cpp library in {folder}: reinstall with {pip_command()}.")
    return found[0]


@log_callback_t
def _quiet_log(level: int, text: bytes | None, _user: int | None) -> None:
    """llama.cpp's log goes to Python's logger at debug level (it prints every tensor otherwise)."""
    import logging

    if text:
        logging.getLogger("llmga.llamacpp").debug(text.decode("utf-8", "replace").rstrip())


def library() -> ctypes.CDLL:
    """The loaded, prototyped and layout-checked library (once per process)."""
    global _LIB
    with _LOCK:
        if _LIB is None:
            lib = ctypes.CDLL(str(_library_path()))
            for name, (restype, argtypes) in _PROTOTYPES.items():
                fn = getattr(lib, name)
                fn.restype = restype
                fn.argtypes = argtypes
            check_layouts(lib)
            lib.llama_log_set(_quiet_log, None)
            lib.llama_backend_init()
            _LIB = lib
        return _LIB


def check_layouts(lib: ctypes.CDLL) -> None:
    """Refuse a library whose default parameters do not read back as this build's known defaults.

    ``llama_*_default_params`` return their structs through a caller buffer; calling them with a larger
    buffer pre-filled with a marker shows how many bytes the library writes, i.e. its struct size.
    """
    for fn_name, struct in (
        ("llama_model_default_params", LlamaModelParams),
        ("llama_context_default_params", LlamaContextParams),
    ):
        probe = (ctypes.c_ubyte * 512)(*([0xA5] * 512))
        raw = ctypes.CFUNCTYPE(c_void_p, c_void_p)((fn_name, lib))
        raw(ctypes.addressof(probe))
        written = max(i for i, b in enumerate(bytes(probe)) if b != 0xA5) + 1
        size = ctypes.sizeof(struct)
        if not size - 8 < written <= size:
            raise LLMGAInputError(
                f"The llama.cpp library writes {written} bytes of {fn_name[:-15]} params, the binding expects "
                f"{size}: the installed xllamacpp is not the build this pack binds; run {pip_command()}."
            )
    model = lib.llama_model_default_params()
    ctx = lib.llama_context_default_params()
    expected = {
        "model.split_mode": (model.split_mode, 1),
        "model.use_extra_bufts": (model.use_extra_bufts, True),
        "ctx.n_ctx": (ctx.n_ctx, 512),
        "ctx.n_batch": (ctx.n_batch, 2048),
        "ctx.type_k": (ctx.type_k, GGML_TYPE_F16),
        "ctx.type_v": (ctx.type_v, GGML_TYPE_F16),
        "ctx.offload_kqv": (ctx.offload_kqv, True),
        "ctx.kv_unified": (ctx.kv_unified, False),
        "ctx.ctx_other": (ctx.ctx_other, None),
    }
    wrong = {k: got for k, (got, want) in expected.items() if got != want}
    if wrong:
        raise LLMGAInputError(
            f"llama.cpp's default parameters read back wrong ({wrong}): the installed xllamacpp is not the build "
            f"this pack binds; run {pip_command()}."
        )
