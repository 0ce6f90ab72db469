"""LLVM IR generation: kernels and the entry function of a compiled program."""
