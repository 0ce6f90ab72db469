"""Graph time does not depend on tensor sizes: declare + differentiate + simplify an MLP's loss.

    python benchmarks/bench_graph.py [--batch batch|N] [--repeats 5]

A 784-1024-1024-10 MLP against a 64-32-10 one, both with softmax
cross-entropy. Nodes are hash-consed, so building the same graph again would
return cached nodes: every repetition uses fresh leaf names, so every node is
new. sympy keeps its own caches across repetitions (as it does in any process
that builds more than one graph), so the first build of each model is
reported next to the median. A tiny model is built first so neither measured
model pays for the process's first graph; that cost is printed too.

The target (issue 2): the large model under 1 s and at most 1.5x the small one.
"""
import argparse
import itertools
import statistics
import time

import compiler as C
from compiler.passes import count_nodes

_fresh = itertools.count()


def build(widths, batch, activation=C.relu):
    """(seconds to declare, to differentiate, to simplify, nodes before and after simplify)."""
    tag = next(_fresh)
    start = time.perf_counter()
    x = C.Input(f"x_{tag}", (batch, widths[0]))
    labels = C.Input(f"labels_{tag}", (batch,), dtype="int64")
    params, h = [], x
    for i, (fan_in, fan_out) in enumerate(zip(widths, widths[1:])):
        W, b = C.Param(f"W{i}_{tag}", (fan_in, fan_out)), C.Param(f"b{i}_{tag}", (fan_out,))
        params += [W, b]
        h = h @ W + b
        if i < len(widths) - 2:
            h = activation(h)
    loss = C.cross_entropy(h, labels)
    declared = time.perf_counter()
    grads = C.grad(loss, params)
    differentiated = time.perf_counter()
    simplified = C.simplify([loss] + grads)
    done = time.perf_counter()
    return (declared - start, differentiated - declared, done - differentiated,
            count_nodes([loss] + grads), count_nodes(simplified))


def measure(widths, batch, repeats):
    first = build(widths, batch)
    rest = [build(widths, batch) for _ in range(repeats)]
    totals = [sum(r[:3]) for r in rest]
    median_run = rest[totals.index(sorted(totals)[len(totals) // 2])]
    return {"first": sum(first[:3]), "median": statistics.median(totals), "split": median_run[:3],
            "nodes": first[3], "simplified_nodes": first[4]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", default="batch", help="a symbolic dimension name or an int (default: symbolic)")
    parser.add_argument("--repeats", type=int, default=5, help="repetitions after the first build (median of these)")
    args = parser.parse_args()
    batch = int(args.batch) if args.batch.isdigit() else args.batch

    start = time.perf_counter()
    build((8, 8, 2), batch)
    warmup = time.perf_counter() - start

    models = {"64-32-10": (64, 32, 10), "784-1024-1024-10": (784, 1024, 1024, 10)}
    results = {name: measure(widths, batch, args.repeats) for name, widths in models.items()}

    print(f"declare + grad + simplify, batch={batch!r}; process warm-up (first graph, 8-8-2): {warmup * 1e3:.0f} ms")
    print(f"{'model':<18} {'nodes':>11} {'first':>9} {'median':>9}   declare / grad / simplify (median run)")
    for name, r in results.items():
        d, g, s = (t * 1e3 for t in r["split"])
        print(f"{name:<18} {r['nodes']:>4} -> {r['simplified_nodes']:<4} {r['first'] * 1e3:>6.1f} ms {r['median'] * 1e3:>6.1f} ms"
              f"   {d:.1f} / {g:.1f} / {s:.1f} ms")
    small, large = results["64-32-10"], results["784-1024-1024-10"]
    ratio_median, ratio_first = large["median"] / small["median"], large["first"] / small["first"]
    print(f"ratio large/small: median {ratio_median:.2f}x, first {ratio_first:.2f}x "
          f"(target: large < 1 s and <= 1.5x; {'met' if large['first'] < 1 and max(ratio_median, ratio_first) <= 1.5 else 'NOT met'})")


if __name__ == "__main__":
    main()
