"""One guard around every LLMGA node's ``execute``, installed where the pack registers its nodes.

Before the node runs: every FLOAT input must be finite (ComfyUI's min/max checks let JSON ``NaN``
through: every comparison with NaN is false), IMAGE, MASK and CONDITIONING tensors must be finite (one
``isfinite`` pass each), and STRING inputs must be valid Unicode (a lone UTF-16 surrogate breaks every
tokenizer and JSON encoder later).

After: an error leaves the node as one message that starts with the node's title and says what to do.
The pack's own errors pass through cleaned (llmga_core.errors.clean_message); anything else (a
third-party failure nobody wrapped) is logged with its traceback and shown as a short message. Cancel
(ComfyUI's interrupt, a BaseException) and out-of-memory errors, which ComfyUI itself handles, pass
untouched.
"""

from __future__ import annotations

import functools
import inspect
import logging
import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from comfy_api.latest import io

from ..llmga_core.errors import LLMGAInputError, clean_message
from ._errors import LLMGANodeError

_log = logging.getLogger("ComfyUI-LLMGA")
_TENSOR_TYPES = {"IMAGE", "MASK", "CONDITIONING"}
_MAX_SHOWN = 300  # characters of a third-party message shown to the user


def _tensors(value: Any) -> Iterable[torch.Tensor]:
    """The tensors an IMAGE, MASK or CONDITIONING value carries (conditioning: [[cond, {pooled_output…}]])."""
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _tensors(item)
    elif isinstance(value, dict):
        for item in value.values():
            if isinstance(item, torch.Tensor):
                yield item


def _non_finite(t: torch.Tensor) -> int:
    if not t.is_floating_point() and not t.is_complex():
        return 0
    return int((~torch.isfinite(t)).sum())


def check_inputs(title: str, inputs: dict[str, str], values: dict[str, Any]) -> None:
    """Refuse non-finite numbers and tensors and broken text among ``values`` (``inputs``: name -> io type)."""
    for name, io_type in inputs.items():
        value = values.get(name)
        if value is None:
            continue
        if io_type == "FLOAT" and isinstance(value, int | float) and not math.isfinite(value):
            raise LLMGANodeError(
                f"{title}: {name} is {value}, not a finite number; set {name} to a number in its range (a workflow "
                "file or a math node produced the NaN/infinity)."
            )
        if io_type == "STRING" and isinstance(value, str):
            bad = next((i for i, ch in enumerate(value) if "\ud800" <= ch <= "\udfff"), None)
            if bad is not None:
                raise LLMGANodeError(
                    f"{title}: {name} holds a broken character at position {bad} (a lone UTF-16 surrogate, "
                    f"{value[bad].encode('utf-16', 'surrogatepass')[-2:][::-1].hex()}); retype that character "
                    "(an emoji cut in half by the tool that wrote the workflow, usually)."
                )
        if io_type in _TENSOR_TYPES:
            for tensor in _tensors(value):
                bad_count = _non_finite(tensor)
                if bad_count:
                    what = {"IMAGE": "pixels", "MASK": "mask values", "CONDITIONING": "values"}[io_type]
                    raise LLMGANodeError(
                        f"{title}: the {name} input has {bad_count} NaN or infinite {what} (of {tensor.numel()}); "
                        "find the node that produced it (a math, normalise or divide step) and fix or clamp its "
                        "output first."
                    )


def _message(title: str, err: Exception) -> str:
    """The user's message for an error leaving a node: starts with the title, no traceback, cleaned."""
    text = clean_message(str(err))
    if isinstance(err, LLMGANodeError | LLMGAInputError):
        if text.startswith("LLMGA: "):  # a shared helper that did not know the node
            text = text[len("LLMGA: ") :]
        return text if text.startswith(title) else f"{title}: {text}"
    shown = text[:_MAX_SHOWN] + ("…" if len(text) > _MAX_SHOWN else "")
    return (
        f"{title}: failed with {type(err).__name__}: {shown or '(no message)'}. Check this node's inputs and model "
        "files; the ComfyUI log has the details (please report it with the workflow if the inputs look right)."
    )


def _passes_through(err: BaseException) -> bool:
    return not isinstance(err, Exception) or isinstance(err, torch.OutOfMemoryError)


def guard(cls: type[io.ComfyNode]) -> type[io.ComfyNode]:
    """Wrap ``cls.execute`` with the checks above (idempotent). Returns ``cls``."""
    if getattr(cls, "_llmga_guarded", False):
        return cls
    func: Callable[..., Any] = inspect.getattr_static(cls, "execute").__func__
    schema: list[tuple[str, dict[str, str]]] = []  # filled on first call: (title, name -> io type)

    def describe(_node: type[io.ComfyNode]) -> tuple[str, dict[str, str]]:
        # from the registered class: ComfyUI runs a locked clone, which must not be touched
        if not schema:
            s = cls.define_schema()
            schema.append((s.display_name or s.node_id, {i.id: i.get_io_type() for i in s.inputs}))
        return schema[0]

    def fail(node: type[io.ComfyNode], err: Exception) -> LLMGANodeError:
        title = describe(node)[0]
        if not isinstance(err, LLMGANodeError | LLMGAInputError):
            _log.error("%s failed", title, exc_info=err)
        return LLMGANodeError(_message(title, err))

    if inspect.iscoroutinefunction(func):

        @functools.wraps(func)
        async def execute_async(node: type[io.ComfyNode], *args: Any, **kwargs: Any) -> Any:
            check_inputs(*describe(node), kwargs)
            try:
                return await func(node, *args, **kwargs)
            except Exception as err:
                if _passes_through(err):
                    raise
                raise fail(node, err) from None

        cls.execute = classmethod(execute_async)  # type: ignore[method-assign,assignment]
    else:

        @functools.wraps(func)
        def execute(node: type[io.ComfyNode], *args: Any, **kwargs: Any) -> Any:
            check_inputs(*describe(node), kwargs)
            try:
                return func(node, *args, **kwargs)
            except Exception as err:
                if _passes_through(err):
                    raise
                raise fail(node, err) from None

        cls.execute = classmethod(execute)  # type: ignore[method-assign,assignment]
    cls._llmga_guarded = True  # type: ignore[attr-defined]
    return cls
