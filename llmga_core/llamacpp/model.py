"""One GGUF text model and its llama.cpp context: tokenize, feed token ids or embedding rows, read logits.

Everything native is owned by :class:`LlamaCppModel` and released by :meth:`LlamaCppModel.close` (also
when the object is garbage-collected), so a host can drop a model and get its memory back.
"""

from __future__ import annotations

import ctypes
import functools
import os
import threading
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import LLMGAInputError
from ..export.gguf import GENERATION_KEY, TEMPLATE_KEY
from .binding import FLASH_ATTN_AUTO, FLASH_ATTN_DISABLED, GGML_TYPE_F32, abort_callback_t, library

__all__ = ["SUPPORTED_ARCHS", "GGUFFileInfo", "LlamaCppModel", "LlamaCppSettings", "default_threads", "inspect_gguf"]

# llama.cpp architectures of the LLMGA backbones (llama: vicuna, Llama-2/3, Mistral)
SUPPORTED_ARCHS = ("llama", "qwen2", "phi3", "gemma")


def default_threads() -> int:
    """Physical cores (llama.cpp is slower on hyper-threads), at least 1."""
    try:
        import psutil

        cores = psutil.cpu_count(logical=False)
    except ImportError:
        cores = None
    return max(1, int(cores or os.cpu_count() or 1))


@dataclass(frozen=True)
class LlamaCppSettings:
    n_ctx: int = 4096
    n_threads: int | None = None  # None: physical cores
    n_gpu_layers: int = 0
    n_batch: int = 512
    kv_f32: bool = False  # f32 KV cache (exact parity tests); llama.cpp's default is f16
    flash_attn: bool | None = None  # None: llama.cpp decides


@dataclass(frozen=True)
class GGUFFileInfo:
    """What the file header says, read without loading the weights."""

    path: Path
    architecture: str
    name: str
    template: str | None  # llmga.template from our exporter
    generation_config: str | None  # JSON, from our exporter
    file_type: int | None


def _fail(path: Path, what: str) -> LLMGAInputError:
    return LLMGAInputError(f"{path.name}: {what}")


def inspect_gguf(path: str | Path) -> GGUFFileInfo:
    """Check that ``path`` is a complete GGUF of an LLMGA backbone (not an mmproj, not truncated)."""
    path = Path(path)
    if not path.is_file():
        raise LLMGAInputError(f"No GGUF file at {path}.")
    stat = path.stat()
    return _inspect(path.resolve(), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=16)
def _inspect(path: Path, _size: int, _mtime_ns: int) -> GGUFFileInfo:
    """The header check, once per file version: gguf's reader walks every vocabulary entry in Python,
    which takes seconds for a 150k-token vocabulary."""
    with path.open("rb") as fh:
        magic = fh.read(4)
    if magic != b"GGUF":
        raise _fail(path, "is not a GGUF file (it does not start with 'GGUF'); pick a .gguf model file.")
    from gguf import GGUFReader

    try:
        reader = GGUFReader(str(path))
    except Exception as exc:  # the reader raises ValueError/struct errors/IndexError on cut files
        raise _fail(
            path,
            f"cannot be read as GGUF ({type(exc).__name__}: {exc}); the file is truncated or damaged, "
            "download or export it again.",
        ) from None
    data_end = max((int(t.data_offset) + int(t.n_bytes) for t in reader.tensors), default=0)
    if data_end > path.stat().st_size:
        raise _fail(path, "is truncated (its tensors end past the end of the file); download or export it again.")

    def text(key: str) -> str | None:
        field = reader.fields.get(key)
        return None if field is None else str(field.contents())

    arch = text("general.architecture") or ""
    if arch == "clip":
        raise _fail(
            path,
            "is an mmproj (vision projector) file; pick the text model GGUF as the model and this "
            "file as the vision source.",
        )
    if arch not in SUPPORTED_ARCHS:
        raise _fail(
            path,
            f"has architecture {arch!r}; the LLMGA GGUF loader runs the LLMGA backbones "
            f"({', '.join(SUPPORTED_ARCHS)}). Export an LLMGA folder with `python -m llmga_core.export gguf`.",
        )
    ftype = reader.fields.get("general.file_type")
    return GGUFFileInfo(
        path=path,
        architecture=arch,
        name=text("general.name") or path.stem,
        template=text(TEMPLATE_KEY),
        generation_config=text(GENERATION_KEY),
        file_type=None if ftype is None else int(ftype.contents()),
    )


class _Native:
    """The C handles; a separate object so a finalizer can free them without keeping the model alive."""

    def __init__(self) -> None:
        self.model: int | None = None
        self.ctx: int | None = None
        self.threadpool: int | None = None

    def free(self) -> None:
        lib = library()
        held = bool(self.ctx or self.model)
        if self.ctx:
            lib.llama_free(self.ctx)
        if self.threadpool:
            lib.ggml_threadpool_free(self.threadpool)  # joins its worker threads
        if self.model:
            lib.llama_model_free(self.model)
        self.ctx = self.model = self.threadpool = None
        if held:
            return_freed_heap()


def return_freed_heap() -> None:
    """Hand the heap pages llama.cpp just freed back to the OS (glibc only; elsewhere nothing to do).

    glibc keeps freed blocks in its arenas for reuse: after ``llama_free`` + ``llama_model_free`` of the
    tiny test model ~65 MB stayed in the process's RSS (measured: loaded 859 MB, freed 840 MB, trimmed
    774 MB = the RSS before loading), so an unloaded model did not look unloaded to the user.
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, bound once; None where the C library has none (musl, macOS, Windows)."""
    try:
        trim = ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


class LlamaCppModel:
    """A loaded GGUF text model with one sequence of context."""

    def __init__(self, path: str | Path, settings: LlamaCppSettings | None = None) -> None:
        self.info = inspect_gguf(path)
        self.settings = settings or LlamaCppSettings()
        self.lib = library()
        self._native = _Native()
        self._finalizer = weakref.finalize(self, self._native.free)
        self._lock = threading.Lock()
        mparams = self.lib.llama_model_default_params()
        mparams.n_gpu_layers = int(self.settings.n_gpu_layers)
        model = self.lib.llama_model_load_from_file(str(self.info.path).encode(), mparams)
        if not model:
            raise _fail(
                self.info.path,
                "llama.cpp could not load it (see the log); the file may be damaged or of an unsupported variant.",
            )
        self._native.model = model
        cparams = self.lib.llama_context_default_params()
        threads = int(self.settings.n_threads or default_threads())
        cparams.n_ctx = int(self.settings.n_ctx)
        cparams.n_batch = cparams.n_ubatch = int(self.settings.n_batch)
        cparams.n_threads = cparams.n_threads_batch = threads
        cparams.no_perf = True
        if self.settings.kv_f32:
            cparams.type_k = cparams.type_v = GGML_TYPE_F32
        if self.settings.flash_attn is not None:
            cparams.flash_attn_type = FLASH_ATTN_AUTO if self.settings.flash_attn else FLASH_ATTN_DISABLED
        ctx = self.lib.llama_init_from_model(model, cparams)
        if not ctx:
            self.close()
            raise _fail(
                self.info.path,
                f"llama.cpp could not create a context of {self.settings.n_ctx} tokens "
                "(out of memory?); lower the context length.",
            )
        self._native.ctx = ctx
        self._attach_threadpool(threads)
        self.vocab = self.lib.llama_model_get_vocab(model)
        self.n_vocab = int(self.lib.llama_vocab_n_tokens(self.vocab))
        self.n_embd = int(self.lib.llama_model_n_embd_inp(model))
        self.n_ctx = int(self.lib.llama_n_ctx(ctx))
        self.bos = int(self.lib.llama_vocab_bos(self.vocab))
        self.add_bos = bool(self.lib.llama_vocab_get_add_bos(self.vocab))
        self.size_bytes = int(self.lib.llama_model_size(model))
        self.n_past = 0
        self._abort: object | None = None

    # -- lifetime ----------------------------------------------------------------------------------
    @property
    def closed(self) -> bool:
        return self._native.ctx is None

    def close(self) -> None:
        """Free the context and the weights now (idempotent)."""
        with self._lock:
            self._finalizer()

    def _attach_threadpool(self, threads: int) -> None:
        """Keep llama.cpp's worker threads for the context's lifetime, as its server does.

        Without one, every ``llama_decode`` starts and joins its own threads: on the tiny test model that was
        most of each token (79 tok/s with 2 threads against the server's 332 on the same file).
        """
        params = ctypes.create_string_buffer(4096)  # struct ggml_threadpool_params is ~530 bytes
        self.lib.ggml_threadpool_params_init(params, threads)
        pool = self.lib.ggml_threadpool_new(params)
        if pool:  # else llama.cpp falls back to threads per call
            self._native.threadpool = pool
            self.lib.llama_attach_threadpool(self._native.ctx, pool, pool)

    def _ctx(self) -> int:
        if self._native.ctx is None:
            raise LLMGAInputError(f"{self.info.path.name}: the llama.cpp model was unloaded; run the loader again.")
        return self._native.ctx

    # -- vocabulary --------------------------------------------------------------------------------
    def tokenize(self, text: str, add_special: bool = True) -> list[int]:
        """Token ids with llama.cpp's tokenizer; special tokens in ``text`` are parsed (as the server does)."""
        data = text.encode("utf-8")
        cap = len(data) + 8
        buf = (ctypes.c_int32 * cap)()
        n = self.lib.llama_tokenize(self.vocab, data, len(data), buf, cap, add_special, True)
        if n < 0:
            cap = -n
            buf = (ctypes.c_int32 * cap)()
            n = self.lib.llama_tokenize(self.vocab, data, len(data), buf, cap, add_special, True)
        return list(buf[:n])

    def piece(self, token: int) -> bytes:
        buf = ctypes.create_string_buffer(64)
        n = self.lib.llama_token_to_piece(self.vocab, token, buf, 64, 0, True)
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = self.lib.llama_token_to_piece(self.vocab, token, buf, -n, 0, True)
        return buf.raw[:n]

    def detokenize(self, tokens: Sequence[int]) -> str:
        """Text of ``tokens`` with special tokens rendered (as LLMGA decodes before stripping)."""
        return b"".join(self.piece(t) for t in tokens).decode("utf-8", "replace")

    def is_eog(self, token: int) -> bool:
        return bool(self.lib.llama_vocab_is_eog(self.vocab, token))

    def meta(self, key: str) -> str | None:
        size = 1 << 16
        buf = ctypes.create_string_buffer(size)
        n = self.lib.llama_model_meta_val_str(self._native.model, key.encode(), buf, size)
        return None if n < 0 else buf.value.decode("utf-8", "replace")

    # -- evaluation --------------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget the context (a new turn re-reads the whole prompt)."""
        self.lib.llama_memory_clear(self.lib.llama_get_memory(self._ctx()), True)
        self.n_past = 0

    def set_abort(self, should_stop: Callable[[], bool] | None) -> None:
        """Let llama.cpp stop a long ``llama_decode`` (the prompt) when ``should_stop()`` turns true."""
        if should_stop is None:
            self.lib.llama_set_abort_callback(self._ctx(), None, None)
            self._abort = None
            return
        callback = abort_callback_t(lambda _data: bool(should_stop()))
        self._abort = callback  # keep it alive while llama.cpp holds the pointer
        self.lib.llama_set_abort_callback(self._ctx(), ctypes.cast(callback, ctypes.c_void_p), None)

    def _decode(self, tokens: Sequence[int] | None, rows: np.ndarray | None, want_logits: bool) -> None:
        n = len(tokens) if tokens is not None else int(rows.shape[0])  # type: ignore[union-attr]
        if self.n_past + n > self.n_ctx:
            raise LLMGAInputError(
                f"{self.info.path.name}: the conversation needs more than the context of {self.n_ctx} tokens "
                f"({self.n_past + n}); raise context_length on the GGUF loader or start a new conversation."
            )
        lib = self.lib
        batch = lib.llama_batch_init(n, self.n_embd if rows is not None else 0, 1)
        try:
            if rows is not None:
                flat = np.ascontiguousarray(rows, dtype=np.float32).reshape(-1)
                ctypes.memmove(batch.embd, flat.ctypes.data, flat.nbytes)
            else:
                for i, t in enumerate(tokens):  # type: ignore[arg-type]
                    batch.token[i] = int(t)
            for i in range(n):
                batch.pos[i] = self.n_past + i
                batch.n_seq_id[i] = 1
                batch.seq_id[i][0] = 0
                batch.logits[i] = 0
            batch.logits[n - 1] = 1 if want_logits else 0
            batch.n_tokens = n
            status = lib.llama_decode(self._ctx(), batch)
        finally:
            lib.llama_batch_free(batch)
        if status == 2:
            raise InterruptedError("llama.cpp decode aborted")
        if status != 0:
            raise RuntimeError(f"llama_decode failed with status {status}")
        self.n_past += n

    def feed_tokens(self, tokens: Sequence[int], want_logits: bool = True) -> None:
        step = self.settings.n_batch
        for start in range(0, len(tokens), step):
            chunk = tokens[start : start + step]
            self._decode(chunk, None, want_logits and start + step >= len(tokens))

    def feed_rows(self, rows: np.ndarray, want_logits: bool = True) -> None:
        """Embedding rows (n, n_embd) as inputs at the next positions (image features at ``<image>``)."""
        if rows.ndim != 2 or rows.shape[1] != self.n_embd:
            raise LLMGAInputError(
                f"{self.info.path.name}: the image features have width {rows.shape[-1]} but the model's input "
                f"width is {self.n_embd}; the vision source does not belong to this model."
            )
        step = self.settings.n_batch
        for start in range(0, rows.shape[0], step):
            self._decode(None, rows[start : start + step], want_logits and start + step >= rows.shape[0])

    def logits(self) -> np.ndarray:
        """A copy of the last position's logits (n_vocab,)."""
        ptr = self.lib.llama_get_logits_ith(self._ctx(), -1)
        if not ptr:
            raise RuntimeError("llama.cpp returned no logits")
        return np.ctypeslib.as_array(ptr, shape=(self.n_vocab,)).copy()
