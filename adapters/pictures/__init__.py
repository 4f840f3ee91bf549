"""Pictures of a graph's topology (`engine graph`): a neutral model built from the plan,
written as Mermaid, Graphviz DOT or JSON. Names and types only, never parameter values."""
