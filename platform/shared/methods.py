"""The selection methods as users choose them: name, parameters with defaults, one line on what each
does. The method registry (graph/selection/registry.py) is the truth; this copy is for the client
side (job submit --help), which loads no numpy, and a test holds it equal to the registry.
"""

USAGE = (
    "g2is (ratio, delta=0.8, variance=0.5, anchor_pool=1000, fallback=strict): the paper's G2IS: walk the gradient graph from the anchors of the validation gradients' principal components",
    'g2is-target (ratio, delta=0.8, variance=0.5, anchor_pool=1000, fallback=strict, centre=False, step=relevance): G2IS steered by the target: components of what the validation gradients share, steps to the neighbour most relevant to the target (docs/quality.md)',
    "g2is-no-graph (ratio, variance=0.5): ablation: G2IS's components and budgets, rows in order of alignment, no walk",
    'g2is-no-gradient (ratio, delta=0.8, variance=0.5, anchor_pool=1000, fallback=strict): ablation: the G2IS walk on sentence embeddings and their graph',
    "less (ratio): LESS: the rows whose Adam-aware gradients are most similar to the target's mean validation gradient",
    "embedding (ratio, reduce=max): the rows whose sentence embeddings are closest to the target's validation examples",
    'random (ratio, seed=0): a seeded uniform sample: the baseline',
)
