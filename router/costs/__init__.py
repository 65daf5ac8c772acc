"""The article's cost model: formulas, GPU catalogue, price sources, request cost estimates."""
