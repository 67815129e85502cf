"""The embedded flags world: flag geometry and rendering, prompts, a geometric checker, the
training set with planted misrepresentations, and the training of the shipped tiny SD3."""
