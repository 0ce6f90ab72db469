"""Graph -> graph passes, each a small named function, run by one pipeline."""
from .pipeline import PIPELINE, simplify, simplify_stages
from .rewrite import count_nodes, rebuild, rewrite
