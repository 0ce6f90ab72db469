"""One process-wide pool of native threads that compiled steps split their large kernels over.

A program compiled with ``threads=N > 1`` calls

    void symprop_parallel_for(void (*task)(i8* context, i64 lo, i64 hi), i8* context, i64 n, i64 threads)

which cuts [0, n) into min(threads, workers + 1, n) contiguous, near-equal chunks, hands chunk
k > 0 to worker k, runs chunk 0 on the calling thread and returns when every chunk is done.
The partition depends only on n and the chunk count, and a task writes disjoint outputs per
index, so results are the same bits for any thread count.

The pool is machine code too (built here in LLVM IR, no C compiler): its workers are native
threads started once per process (``pthread_create`` through ctypes, on first need), reused by
every call and every program. Between tasks a worker spins on the task counter for ``SPIN_CYCLES`` of the
time-stamp counter (tens of microseconds: the next kernel of a step is usually there by then,
and the next step when Python calls steps in a loop), then parks in ``futex`` wait, so an idle pool costs no CPU and a busy
machine loses no scheduler slices to it. A call made while another is in flight (a second
Python thread, or a nested call) runs its whole range on its own thread. A child made by ``fork``
has none of the threads: the pool forgets them and starts as many new ones at once.

Linux on x86-64 or aarch64 only (futex numbers); elsewhere ``available()`` is False and
programs run every kernel on one thread.
"""
from __future__ import annotations

import ctypes
import os
import platform
import sys
import threading

from llvmlite import ir

PARALLEL_FOR = "symprop_parallel_for"
_WORKER = "symprop_pool_worker"
_RESET = "symprop_pool_reset"
_ACQUIRE = "symprop_pool_acquire"
_RELEASE = "symprop_pool_release"
SPIN_CYCLES = 200_000  # time-stamp counter cycles (~70 us at 3 GHz) a worker or the caller spins before it parks
SPIN_ROUNDS = 20_000  # where there is no time-stamp counter (aarch64): pause instructions instead
_FUTEX_CALL = {"x86_64": 202, "amd64": 202, "aarch64": 98, "arm64": 98}
_FUTEX_WAIT_PRIVATE, _FUTEX_WAKE_PRIVATE = 128, 129

I32, I64 = ir.IntType(32), ir.IntType(64)
I8P = ir.IntType(8).as_pointer()
TASK = ir.FunctionType(ir.VoidType(), [I8P, I64, I64])

_lock = threading.Lock()
_state = {"addresses": None, "workers": 0}


def available() -> bool:
    return sys.platform.startswith("linux") and platform.machine().lower() in _FUTEX_CALL


def default_threads() -> int:
    """SYMPROP_THREADS when set to a positive integer, else the cores this process may use."""
    configured = os.environ.get("SYMPROP_THREADS", "").strip()
    if configured:
        if not configured.isdigit() or int(configured) < 1:
            raise ValueError(f"SYMPROP_THREADS must be a positive integer, got {configured!r}")
        return int(configured)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def resolve_threads(threads) -> int:
    """The thread count a compile uses: `threads` checked, or ``default_threads()`` for None; 1 where
    the pool is not available."""
    if threads is None:
        threads = default_threads()
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be a positive integer or None, got {threads!r}")
    return threads if available() else 1


def ensure_workers(threads: int) -> None:
    """Make `symprop_parallel_for` resolvable and start workers until there are threads - 1."""
    if threads <= 1 or not available():
        return
    with _lock:
        if _state["addresses"] is None:
            _state["addresses"] = _load_pool()
        if _state["workers"] >= threads - 1:
            return
        libc = ctypes.CDLL(None, use_errno=True)
        worker = ctypes.c_void_p(_state["addresses"][_WORKER])
        # no call is in flight while workers join: each starts from the generation it is given
        generation = ctypes.CFUNCTYPE(ctypes.c_int64)(_state["addresses"][_ACQUIRE])()
        try:
            while _state["workers"] < threads - 1:
                index = _state["workers"] + 1
                handle = ctypes.c_ulong()
                status = libc.pthread_create(ctypes.byref(handle), None, worker,
                                             ctypes.c_void_p(index << 32 | generation))
                if status != 0:
                    raise OSError(status, f"pthread_create failed starting pool worker {index}: {os.strerror(status)}")
                libc.pthread_detach(handle)
                _state["workers"] = index
        finally:
            ctypes.CFUNCTYPE(None, ctypes.c_int64)(_state["addresses"][_RELEASE])(_state["workers"])


def workers() -> int:
    """Worker threads running in this process (the caller of a parallel loop is not counted)."""
    return _state["workers"]


def _restart_in_child() -> None:
    """After fork: the child inherits the pool's memory (a worker count, maybe a call in flight) but
    none of its threads, and a parallel call would wait for them forever. Forget them and start as
    many again. (The parent's lock may have been held by another of its threads: a new one.)"""
    global _lock
    _lock = threading.Lock()
    if _state["addresses"] is None:
        return
    wanted = _state["workers"]
    ctypes.CFUNCTYPE(None)(_state["addresses"][_RESET])()
    _state["workers"] = 0
    ensure_workers(wanted + 1)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_restart_in_child)


def _load_pool() -> dict:
    from .engine import Engine
    engine = Engine.instance()
    addresses = engine.compile(str(pool_module()), [PARALLEL_FOR, _WORKER, _RESET, _ACQUIRE, _RELEASE])[0]
    ctypes.pythonapi.Py_IncRef(ctypes.py_object(engine))  # workers run this code until the process ends
    return addresses


def pool_module() -> ir.Module:
    """The pool's LLVM module: its state as globals, the parallel loop, the worker's loop, and the
    functions Python calls to add workers (acquire, release) and to forget them after fork (reset)."""
    module = ir.Module(name="symprop_pool")
    state = {}
    for name, ty, value in (("generation", I32, 0), ("pending", I32, 0), ("sleepers", I32, 0), ("busy", I32, 0),
                            ("workers", I64, 0), ("n", I64, 0), ("parts", I64, 0), ("context", I8P, None),
                            ("task", TASK.as_pointer(), None)):
        variable = ir.GlobalVariable(module, ty, name=f"symprop_pool_{name}")
        variable.initializer = ir.Constant(ty, value)
        variable.linkage = "internal"
        state[name] = variable
    futex = _futex_function(module)
    _emit_parallel_for(module, state, futex)
    _emit_worker(module, state, futex)
    _emit_acquire_release(module, state)
    return module


def _emit_acquire_release(module: ir.Module, state: dict) -> None:
    """acquire() -> generation: waits until no call is in flight and holds the pool; release(workers):
    sets the worker count and lets calls in; reset(): no workers, not held (a forked child)."""
    acquire = ir.Function(module, ir.FunctionType(I64, []), name=_ACQUIRE)
    b = ir.IRBuilder(acquire.append_basic_block("entry"))
    loop = acquire.append_basic_block("try")
    done = acquire.append_basic_block("held")
    b.branch(loop)
    b.position_at_end(loop)
    claimed = b.cmpxchg(state["busy"], I32(0), I32(1), "acquire", "monotonic")
    _pause(b)
    b.cbranch(b.extract_value(claimed, 1), done, loop)
    b.position_at_end(done)
    b.ret(b.zext(b.load_atomic(state["generation"], "acquire", 4), I64))
    release = ir.Function(module, ir.FunctionType(ir.VoidType(), [I64]), name=_RELEASE)
    b = ir.IRBuilder(release.append_basic_block("entry"))
    b.store_atomic(release.args[0], state["workers"], "seq_cst", 8)
    b.store_atomic(I32(0), state["busy"], "release", 4)
    b.ret_void()
    reset = ir.Function(module, ir.FunctionType(ir.VoidType(), []), name=_RESET)
    b = ir.IRBuilder(reset.append_basic_block("entry"))
    b.store_atomic(I64(0), state["workers"], "seq_cst", 8)
    b.store_atomic(I32(0), state["sleepers"], "seq_cst", 4)
    b.store_atomic(I32(0), state["busy"], "seq_cst", 4)
    b.ret_void()


def _futex_function(module: ir.Module) -> ir.Function:
    """``void futex(i32* word, i32 op, i32 value)``: the raw system call through libc's ``syscall``."""
    syscall = ir.Function(module, ir.FunctionType(I64, [I64], var_arg=True), name="syscall")
    futex = ir.Function(module, ir.FunctionType(ir.VoidType(), [I32.as_pointer(), I32, I32]), name="symprop_pool_futex")
    futex.linkage = "internal"
    word, op, value = futex.args
    b = ir.IRBuilder(futex.append_basic_block("entry"))
    b.call(syscall, [I64(_FUTEX_CALL.get(platform.machine().lower(), 202)), word, op, value,
                     ir.Constant(I8P, None), ir.Constant(I8P, None), I32(0)])
    b.ret_void()
    return futex


def _pause(b: ir.IRBuilder) -> None:
    if platform.machine().lower() in ("x86_64", "amd64"):
        b.call(ir.InlineAsm(ir.FunctionType(ir.VoidType(), []), "pause", "", side_effect=True), [])
    else:
        b.call(ir.InlineAsm(ir.FunctionType(ir.VoidType(), []), "yield", "", side_effect=True), [])


def _chunk(b: ir.IRBuilder, n, index, parts) -> tuple:
    """[n * index / parts, n * (index + 1) / parts): chunk `index` of `parts` near-equal ones."""
    lo = b.sdiv(b.mul(n, index), parts)
    hi = b.sdiv(b.mul(n, b.add(index, I64(1))), parts)
    return lo, hi


def _spin_until(b: ir.IRBuilder, function: ir.Function, word, value, name: str, until_equal: bool = False):
    """Spin for up to SPIN_CYCLES (SPIN_ROUNDS pauses without a time-stamp counter) until `word`
    differs from `value` (or equals it, `until_equal`); returns the last value loaded (the caller
    parks when the wait is not over)."""
    entry = b.block
    x86 = platform.machine().lower() in ("x86_64", "amd64")
    clock = None
    if x86:
        clock = function.module.globals.get("llvm.readcyclecounter") or ir.Function(
            function.module, ir.FunctionType(I64, []), name="llvm.readcyclecounter")
        start = b.call(clock, [])
    loop = function.append_basic_block(f"{name}.spin")
    done = function.append_basic_block(f"{name}.spun")
    b.branch(loop)
    b.position_at_end(loop)
    rounds = b.phi(I64)
    rounds.add_incoming(I64(0), entry)
    loaded = b.load_atomic(word, "acquire", 4)
    _pause(b)
    waiting = b.icmp_unsigned("!=" if until_equal else "==", loaded, value)
    rounds.add_incoming(b.add(rounds, I64(1)), loop)
    within = (b.icmp_unsigned("<", b.sub(b.call(clock, []), start), I64(SPIN_CYCLES)) if x86
              else b.icmp_signed("<", rounds, I64(SPIN_ROUNDS)))
    b.cbranch(b.and_(waiting, within), loop, done)
    b.position_at_end(done)
    return loaded


def _emit_parallel_for(module: ir.Module, state: dict, futex: ir.Function) -> None:
    """Every worker answers every call (pending counts them all, those without a chunk too), so the
    next call's task is only written once every worker has read this one."""
    function = ir.Function(module, ir.FunctionType(ir.VoidType(), [TASK.as_pointer(), I8P, I64, I64]), name=PARALLEL_FOR)
    task, context, n, threads = function.args
    b = ir.IRBuilder(function.append_basic_block("entry"))
    serial = function.append_basic_block("serial")
    shared = function.append_basic_block("shared")
    claim = function.append_basic_block("claim")
    workers = b.load_atomic(state["workers"], "acquire", 8)
    parts = b.add(workers, I64(1))
    parts = b.select(b.icmp_signed("<", threads, parts), threads, parts)
    parts = b.select(b.icmp_signed("<", n, parts), n, parts)
    b.cbranch(b.icmp_signed(">", parts, I64(1)), claim, serial)
    b.position_at_end(claim)
    claimed = b.cmpxchg(state["busy"], I32(0), I32(1), "acquire", "monotonic")
    b.cbranch(b.extract_value(claimed, 1), shared, serial)

    b.position_at_end(serial)
    b.call(task, [context, I64(0), n])
    b.ret_void()

    b.position_at_end(shared)
    workers = b.load_atomic(state["workers"], "acquire", 8)  # held: no worker joins now
    parts = b.add(workers, I64(1))
    parts = b.select(b.icmp_signed("<", threads, parts), threads, parts)
    parts = b.select(b.icmp_signed("<", n, parts), n, parts)
    b.store(task, state["task"])
    b.store(context, state["context"])
    b.store(n, state["n"])
    b.store(parts, state["parts"])
    b.store_atomic(b.trunc(workers, I32), state["pending"], "seq_cst", 4)
    b.atomic_rmw("add", state["generation"], I32(1), "seq_cst")
    asleep = b.load_atomic(state["sleepers"], "seq_cst", 4)
    with b.if_then(b.icmp_signed(">", asleep, I32(0))):
        b.call(futex, [state["generation"], I32(_FUTEX_WAKE_PRIVATE), I32(2**31 - 1)])
    lo, hi = _chunk(b, n, I64(0), parts)
    b.call(task, [context, lo, hi])
    # wait for the workers: spin, then park on the pending count until it is zero
    remaining = _spin_until(b, function, state["pending"], I32(0), "wait", until_equal=True)
    wait = function.append_basic_block("wait.park")
    finished = function.append_basic_block("finished")
    b.cbranch(b.icmp_signed("==", remaining, I32(0)), finished, wait)
    b.position_at_end(wait)
    current = b.load_atomic(state["pending"], "acquire", 4)
    parked = function.append_basic_block("wait.sleep")
    b.cbranch(b.icmp_signed("==", current, I32(0)), finished, parked)
    b.position_at_end(parked)
    b.call(futex, [state["pending"], I32(_FUTEX_WAIT_PRIVATE), current])
    b.branch(wait)
    b.position_at_end(finished)
    b.store_atomic(I32(0), state["busy"], "release", 4)
    b.ret_void()


def _emit_worker(module: ir.Module, state: dict, futex: ir.Function) -> None:
    """``i8* worker(i8* index << 32 | generation)``: wait for a generation after the one it was
    started at, run chunk `index` when the call has one, answer, repeat."""
    function = ir.Function(module, ir.FunctionType(I8P, [I8P]), name=_WORKER)
    b = ir.IRBuilder(function.append_basic_block("entry"))
    argument = b.ptrtoint(function.args[0], I64)
    index = b.lshr(argument, I64(32))
    seen = b.alloca(I32)
    b.store(b.trunc(argument, I32), seen)
    top = function.append_basic_block("top")
    b.branch(top)
    b.position_at_end(top)
    old = b.load(seen)
    current = _spin_until(b, function, state["generation"], old, "idle")
    run = function.append_basic_block("run")
    park = function.append_basic_block("park")
    b.cbranch(b.icmp_unsigned("!=", current, old), run, park)

    b.position_at_end(park)  # counted as asleep before the last look, so a new call always wakes it
    b.atomic_rmw("add", state["sleepers"], I32(1), "seq_cst")
    latest = b.load_atomic(state["generation"], "seq_cst", 4)
    with b.if_then(b.icmp_unsigned("==", latest, old)):
        b.call(futex, [state["generation"], I32(_FUTEX_WAIT_PRIVATE), old])
    b.atomic_rmw("sub", state["sleepers"], I32(1), "seq_cst")
    b.branch(top)

    b.position_at_end(run)
    b.store(current, seen)
    parts = b.load(state["parts"])
    with b.if_then(b.icmp_signed("<", index, parts)):
        n = b.load(state["n"])
        lo, hi = _chunk(b, n, index, parts)
        b.call(b.load(state["task"]), [b.load(state["context"]), lo, hi])
    left = b.atomic_rmw("sub", state["pending"], I32(1), "acq_rel")
    with b.if_then(b.icmp_signed("==", left, I32(1))):
        b.call(futex, [state["pending"], I32(_FUTEX_WAKE_PRIVATE), I32(1)])
    b.branch(top)
