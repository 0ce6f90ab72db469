"""Attention: the composite (stored scores and probabilities) against the fused primitive (online
softmax) and torch's scaled_dot_product_attention, forward and forward + backward, one thread.

    python benchmarks/bench_attention.py [--lengths 64,256,1024] [--heads 4] [--dim 64] [--causal]
                                         [--dtype float32] [--rounds 9]

q, k, v: (heads, T, d). Forward: the output. Forward + backward: the output and the gradients of
sum(out * w) with respect to q, k and v (w fixed). Candidates are timed in interleaved rounds and
the median per call is printed (microseconds), with each compiled program's arena (temporaries,
slots shared by liveness) and its largest temporary. FLASH_MIN_T in compiler/sequence_ops.py is
chosen from this table (docs/architecture.md, "Attention").
"""
from common import describe_unset, single_threaded_environment

_UNSET = single_threaded_environment()

import argparse  # noqa: E402

import numpy as np  # noqa: E402

import compiler as sp  # noqa: E402
from common import compare, machine_summary, optional_module, print_table  # noqa: E402
from compiler.sequence_ops import FLASH_MIN_T  # noqa: E402

ITEMSIZE = {"float32": 4, "float64": 8, "int64": 8, "int32": 4, "bool": 1}


def arena(plan: dict) -> tuple:
    """(bytes of the arena: the largest buffer of each slot, bytes of the largest temporary)."""
    slots, largest = {}, 0
    for buffer in plan["buffers"]:
        if buffer["slot"] is None:
            continue
        size = int(np.prod(buffer["shape"])) * ITEMSIZE[buffer["dtype"]]
        slots[buffer["slot"]] = max(slots.get(buffer["slot"], 0), size)
        largest = max(largest, size)
    return sum(slots.values()), largest


def programs(length: int, heads: int, dim: int, causal: bool, dtype: str, fused: bool) -> tuple:
    q, k, v = (sp.Input(name, (heads, length, dim), dtype=dtype) for name in "qkv")
    out = sp.scaled_dot_product_attention(q, k, v, causal=causal, fused=fused)
    w = sp.Input("w", out.shape, dtype=dtype)
    forward = sp.compile(out)
    step = sp.compile([out] + sp.grad((out * w).sum(), [q, k, v]))
    return forward, step


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", default="64,128,256,512,1024,2048")
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--causal", action="store_true")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    torch = optional_module("torch")
    if torch is not None:
        torch.set_num_threads(1)
    print(machine_summary())
    print(f"OpenBLAS overrides unset: {describe_unset(_UNSET)}; FLASH_MIN_T = {FLASH_MIN_T}")
    print(f"q, k, v: ({args.heads}, T, {args.dim}) {args.dtype}{', causal' if args.causal else ''}")
    rng = np.random.default_rng(0)
    forward_rows, step_rows, memory = [], [], []
    for length in (int(t) for t in args.lengths.split(",")):
        shape = (args.heads, length, args.dim)
        values = {name: rng.standard_normal(shape).astype(args.dtype) for name in "qkvw"}
        inputs = {name: values[name] for name in "qkv"}
        composite, fused = (programs(length, args.heads, args.dim, args.causal, args.dtype, f) for f in (False, True))
        forward = {"composite": lambda: composite[0](**inputs), "fused": lambda: fused[0](**inputs)}
        step = {"composite": lambda: composite[1](**values), "fused": lambda: fused[1](**values)}
        if torch is not None:
            tensors = {name: torch.tensor(values[name]) for name in "qkvw"}
            leaves = {name: tensors[name].clone().requires_grad_() for name in "qkv"}

            def torch_forward():
                with torch.no_grad():
                    torch.nn.functional.scaled_dot_product_attention(*(tensors[n] for n in "qkv"),
                                                                     is_causal=args.causal)

            def torch_step():
                out = torch.nn.functional.scaled_dot_product_attention(*(leaves[n] for n in "qkv"),
                                                                       is_causal=args.causal)
                return torch.autograd.grad((out * tensors["w"]).sum(), [leaves[n] for n in "qkv"])

            forward["torch"], step["torch"] = torch_forward, torch_step
        forward_rows.append((f"T={length}", compare(forward, rounds=args.rounds)))
        step_rows.append((f"T={length}", compare(step, rounds=args.rounds)))
        sizes = [arena(p.plan) for p in (composite[0], fused[0], composite[1], fused[1])]
        memory.append((length, sizes))
    columns = ["composite", "fused", "torch"]
    print_table("forward (us)", forward_rows, columns, reference="composite")
    print_table("forward + backward (us)", step_rows, columns, reference="composite")
    print("\narena MB (largest temporary MB): forward composite, fused | forward + backward composite, fused")
    for length, sizes in memory:
        cells = [f"{total / 2**20:8.2f} ({largest / 2**20:.2f})" for total, largest in sizes]
        print(f"T={length:<5} {cells[0]} {cells[1]} | {cells[2]} {cells[3]}")


if __name__ == "__main__":
    main()
