"""Reports administrators run the program on: one SQL definition each, three renderings."""
