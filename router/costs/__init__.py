"""The article's cost model: formulas, GPU catalogue, price sources, request cost estimates.

* :mod:`router.costs.formulas` - the seed article's formulas (pre-training, inference per 1K
  tokens, monthly cost, break-even tokens and subscribers), pure float functions.
* :mod:`router.costs.gpus` - GPU throughput and rent, overridable from ``config.yaml``.
* :mod:`router.costs.pricing` - each catalogue model's price (config, litellm's bundled map, or
  the formula), resolved once at start-up into integer micro-dollars per 1M tokens.
* :mod:`router.costs.estimate` - the request path: estimate, worst case and actual cost of a call
  in integer micro-dollars.

Nothing is re-exported here so that importing one piece never drags in the others.
"""
