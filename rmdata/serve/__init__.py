"""``rmdata serve``: a reward model over HTTP for RL loops and best-of-N, batched across requests, exact."""
