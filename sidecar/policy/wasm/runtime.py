"""A lean caller of a policy OPA compiled to WebAssembly (ABI 1.2+), on wasmtime.

One evaluation is one call into the module (``opa_eval``): the input's JSON text
is copied to the heap, the module parses it, evaluates the entry point and writes
the result's JSON text, which is read back with ``ctypes.string_at``. Each call
from Python into wasmtime costs microseconds, so the hot path makes one; host
builtins (``opa_builtinN``) call back into the module only when a policy needs them.

The data document is parsed into the module once per instance; ``opa_eval`` resets
the heap to the pointer after it on every call, so memory does not grow with use.
"""

from __future__ import annotations

import ctypes
import json
import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

import wasmtime
from wasmtime import _bindings as ffi
from wasmtime._func import maybe_raise_last_exn

from sidecar.errors import PolicyError
from sidecar.policy.wasm import jsontext, values
from sidecar.policy.wasm.builtins import Builtin, BuiltinError, EvalContext, Halt, load_all

__all__ = ["UnsupportedBuiltin", "WasmPolicy"]

log = logging.getLogger(__name__)

_I32 = wasmtime.ValType.i32()
_ABI_MAJOR = 1
_ABI_MINOR_MIN = 2
_FORMAT_JSON = 0
_FORMAT_VALUE = 1


class UnsupportedBuiltin(PolicyError):
    """The module needs host builtins this engine does not implement."""

    def __init__(self, names: list[str]) -> None:
        self.names = names
        listed = ", ".join(names)
        super().__init__(
            f"the embedded engine does not implement the builtin{'s' if len(names) > 1 else ''} "
            f"{listed} that this bundle uses; use policy.engine: opa to evaluate it with an OPA server"
        )


class _Aborted(Exception):
    """The module called ``opa_abort`` (a conflict, an internal error)."""


class _RawCall:
    """An export called through ``wasmtime_func_call_unchecked`` with i32 arguments.

    wasmtime-py's ``Func.__call__`` builds the function's type and converts every
    value on each call (about 15 us); this calls the C API with a reused argument
    buffer (about 4 us). Only for exports whose parameters and result are i32.
    """

    __slots__ = ("_args", "_ctx", "_func", "_size")

    def __init__(self, store: wasmtime.Store, func: wasmtime.Func, params: int) -> None:
        self._ctx = store._context()  # NOTE: a store's context pointer is fixed for its life
        self._func = ctypes.byref(func._func)
        self._size = max(params, 1)
        self._args = (ffi.wasmtime_val_raw_t * self._size)()

    def __call__(self, *params: int) -> int:
        args = self._args
        for i, value in enumerate(params):
            args[i].i32 = value
        trap = ctypes.POINTER(ffi.wasm_trap_t)()
        error = ffi._wasmtime_func_call_unchecked(self._ctx, self._func, args, self._size, ctypes.byref(trap))
        if error:
            maybe_raise_last_exn()
            raise wasmtime.WasmtimeError._from_ptr(error)
        if trap:
            trap_obj = wasmtime.Trap._from_ptr(trap)
            maybe_raise_last_exn()  # NOTE: re-raises what a host function raised, if one did
            raise trap_obj
        return int(args[0].i32) & 0xFFFFFFFF


_ENGINE: wasmtime.Engine | None = None
_ENGINE_LOCK = threading.Lock()


def _engine() -> wasmtime.Engine:
    global _ENGINE
    with _ENGINE_LOCK:
        if _ENGINE is None:
            _ENGINE = wasmtime.Engine()
        return _ENGINE


class WasmPolicy:
    """One instantiated policy module with its data loaded.

    ``evaluate`` is serialised by a lock: an instance runs one evaluation at a time.
    Raises PolicyError (``UnsupportedBuiltin`` for a missing host builtin) when the
    module can't be used.
    """

    def __init__(self, wasm: bytes, data: Mapping[str, Any] | None = None,
                 builtins: Mapping[str, Builtin] | None = None) -> None:
        registry = load_all() if builtins is None else builtins
        engine = _engine()
        try:
            module = wasmtime.Module(engine, wasm)
        except wasmtime.WasmtimeError as exc:
            raise PolicyError(f"the compiled policy is not a valid Wasm module: {exc}") from exc
        self._store = wasmtime.Store(engine)
        self._lock = threading.Lock()
        self._ctx: EvalContext | None = None
        self._error: BaseException | None = None
        self._memory = self._make_memory(module, len(wasm))
        linker = wasmtime.Linker(engine)
        linker.define(self._store, "env", "memory", self._memory)
        self._define_imports(linker)
        try:
            instance = linker.instantiate(self._store, module)
        except (wasmtime.WasmtimeError, wasmtime.Trap) as exc:
            raise PolicyError(f"the compiled policy can't be instantiated: {exc}") from exc
        exports = instance.exports(self._store)
        self._export = exports
        self._check_abi(exports)
        self._eval = self._raw(exports, "opa_eval", 7)
        self._malloc = self._raw(exports, "opa_malloc", 1)
        self._value_dump = self._raw(exports, "opa_value_dump", 1)
        self._value_parse = self._raw(exports, "opa_value_parse", 2)
        self._json_dump = self._raw(exports, "opa_json_dump", 1)
        self._json_parse = self._raw(exports, "opa_json_parse", 2)
        self._memory_ref = ctypes.byref(self._memory._memory)
        self._store_ctx = self._store._context()
        self._size = 0
        self._base_addr = 0
        self.entrypoints: dict[str, int] = self._call_json("entrypoints")
        needed: dict[str, int] = self._call_json("builtins")
        missing = sorted(name for name in needed if name not in registry)
        if missing:
            raise UnsupportedBuiltin(missing)
        self.builtins_used = tuple(sorted(needed))
        self._by_id: dict[int, tuple[str, Builtin]] = {i: (n, registry[n]) for n, i in needed.items()}
        self._data_addr = self._load_json(json.dumps(data or {}, ensure_ascii=False).encode())
        self._heap = self._exports_call("opa_heap_ptr_get")

    # --- set-up ---------------------------------------------------------------------

    def _make_memory(self, module: wasmtime.Module, wasm_size: int) -> wasmtime.Memory:
        for imp in module.imports:
            if imp.module == "env" and imp.name == "memory" and isinstance(imp.type, wasmtime.MemoryType):
                # NOTE: the module's data segments (its string constants) are laid out past the
                # declared minimum when the policy is large, so start with room for all of them.
                minimum = imp.type.limits.min + (wasm_size + 65535) // 65536
                return wasmtime.Memory(self._store, wasmtime.MemoryType(wasmtime.Limits(minimum, None)))
        raise PolicyError("the compiled policy does not import env.memory: not an OPA Wasm module")

    def _define_imports(self, linker: wasmtime.Linker) -> None:
        linker.define_func("env", "opa_abort", wasmtime.FuncType([_I32], []), self._abort)
        linker.define_func("env", "opa_println", wasmtime.FuncType([_I32], []), self._println)
        for n in range(5):
            ty = wasmtime.FuncType([_I32] * (n + 2), [_I32])
            linker.define_func("env", f"opa_builtin{n}", ty, self._builtin)

    def _raw(self, exports: Any, name: str, params: int) -> _RawCall:
        func = exports.get(name) if hasattr(exports, "get") else None
        if not isinstance(func, wasmtime.Func):
            raise PolicyError(f"the compiled policy does not export {name}: not an OPA Wasm module (ABI 1.2+)")
        return _RawCall(self._store, func, params)

    def _check_abi(self, exports: Any) -> None:
        try:
            major = exports["opa_wasm_abi_version"].value(self._store)
            minor = exports["opa_wasm_abi_minor_version"].value(self._store)
        except KeyError as exc:
            raise PolicyError("the compiled policy has no OPA Wasm ABI version") from exc
        if major != _ABI_MAJOR or minor < _ABI_MINOR_MIN:
            raise PolicyError(f"the compiled policy uses OPA Wasm ABI {major}.{minor}; "
                              f"this engine needs {_ABI_MAJOR}.{_ABI_MINOR_MIN} or a later 1.x")

    # --- memory ---------------------------------------------------------------------

    def _refresh(self) -> int:
        """The memory's current size, re-reading its base address when it changed (it grew)."""
        size = int(ffi._wasmtime_memory_data_size(self._store_ctx, self._memory_ref))
        if size != self._size:
            self._size = size
            self._base_addr = ctypes.addressof(self._memory.data_ptr(self._store).contents)
        return size

    def _string_at(self, addr: int) -> bytes:
        if addr <= 0 or addr >= self._refresh():
            raise PolicyError(f"the policy module returned an invalid address {addr}")
        return ctypes.string_at(self._base_addr + addr)

    def _write(self, addr: int, raw: bytes) -> None:
        end = addr + len(raw)
        size = self._refresh()
        if end > size:
            self._memory.grow(self._store, (end - size + 65535) // 65536)
            self._refresh()
        ctypes.memmove(self._base_addr + addr, raw, len(raw))

    def _exports_call(self, name: str) -> int:
        return self._raw(self._export, name, 0)()

    def _call_json(self, name: str) -> Any:
        addr = self._exports_call(name)
        return json.loads(self._string_at(self._json_dump(addr)))

    def _load_json(self, raw: bytes) -> int:
        ptr = self._malloc(len(raw))
        self._write(ptr, raw)
        addr = self._json_parse(ptr, len(raw))
        if not addr:
            raise PolicyError("the policy module could not parse the data document")
        return int(addr)

    # --- imports --------------------------------------------------------------------

    def _abort(self, addr: int) -> None:
        try:
            message = self._string_at(addr).decode("utf-8", "replace")
        except PolicyError:
            message = "(unreadable abort message)"
        raise _Aborted(message)

    def _println(self, addr: int) -> None:
        log.info("policy print: %s", self._string_at(addr).decode("utf-8", "replace"))

    def _builtin(self, builtin_id: int, _ctx: int, *arg_addrs: int) -> int:
        _name, fn = self._by_id[builtin_id]
        args = [values.parse(self._string_at(self._value_dump(a)).decode()) for a in arg_addrs]
        ctx = self._ctx
        if ctx is None:  # NOTE: made at the first host call: most evaluations make none
            ctx = self._ctx = EvalContext(now_ns=time.time_ns())
        try:
            result = fn(ctx, *args)
        except BuiltinError:
            return 0
        except Halt as exc:
            self._error = exc
            raise
        except Exception as exc:  # NOTE: a bug in a builtin must be an error, never a decision
            self._error = exc
            raise
        raw = values.dump(result).encode()
        ptr = self._malloc(len(raw))
        self._write(ptr, raw)
        return self._value_parse(ptr, len(raw))

    # --- evaluation -----------------------------------------------------------------

    def entrypoint_id(self, entrypoint: str) -> int:
        """The id of ``entrypoint`` (``statelock/authz/decision``); PolicyError when the module lacks it."""
        try:
            return self.entrypoints[entrypoint]
        except KeyError:
            raise PolicyError(f"the compiled policy has no entry point {entrypoint}; "
                              f"it has {', '.join(sorted(self.entrypoints)) or 'none'}") from None

    def evaluate_raw(self, entrypoint_id: int, input_json: bytes | None, *, values_out: bool = False) -> bytes:
        """The result set's text (``[{"result": ...}]``, ``[]`` when undefined) for one input.

        ``input_json`` is the input's JSON text, None for no input at all (escaped
        surrogates are written as UTF-8 first: ``jsontext.input_text``). The text is
        JSON, or with ``values_out`` Rego value text (sets as set literals, which
        ``values.result_json`` reads back sorted: JSON output lists a set in the
        module's hash order, not OPA's sorted order). Raises
        PolicyError when the evaluation fails (a conflict, a halting builtin error).
        """
        with self._lock:
            self._ctx = None
            self._error = None
            heap = self._heap
            addr, length = 0, 0
            if input_json is not None:
                input_json = jsontext.input_text(input_json)
                self._write(heap, input_json)
                addr, length = heap, len(input_json)
            try:
                result = self._eval(0, entrypoint_id, self._data_addr, addr, length,
                                    heap + length, _FORMAT_VALUE if values_out else _FORMAT_JSON)
                return self._string_at(result)
            except PolicyError:
                raise
            except Exception as exc:  # NOTE: a trap, an abort, a Halt, or a bug in a host builtin
                raise PolicyError(f"policy evaluation failed: {self._error_text(exc)}") from exc
            finally:
                self._ctx = None

    def _error_text(self, exc: BaseException) -> str:
        cause = self._error or exc
        if isinstance(cause, wasmtime.Trap | wasmtime.WasmtimeError):
            # NOTE: wasmtime's text is "error while executing at wasm backtrace:", the frames,
            # then "Caused by:" and the trap; keep the trap and the innermost frame.
            lines = [line.strip() for line in str(cause).strip().splitlines() if line.strip()]
            frames = [line.split(" - ", 1)[1] for line in lines if " - " in line]
            trap = lines[-1] if lines else "trap"
            return f"{trap} in {frames[0]}" if frames else trap
        return str(cause) or type(cause).__name__

    def evaluate(self, entrypoint_id: int, input_doc: Any) -> Any:
        """The entry point's value for ``input_doc`` (a JSON-able document), None when undefined.

        Raises PolicyError when the evaluation fails and when its result is not JSON.
        """
        try:
            raw = json.dumps(input_doc, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()
        except (TypeError, ValueError) as exc:
            raise PolicyError(f"policy input is not JSON: {exc}") from exc
        text = self.evaluate_raw(entrypoint_id, raw, values_out=True)
        try:
            results = values.result_json(text)
        except values.ValueSyntaxError as exc:  # NOTE: to_number(".5") makes a number JSON can't hold
            raise PolicyError(f"policy evaluation failed: the result is not a JSON value: {exc}") from exc
        if not results:
            return None
        return results[0].get("result")

