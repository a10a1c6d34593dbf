"""Migration tests: the stairway over every revision and the drift check against the code."""
