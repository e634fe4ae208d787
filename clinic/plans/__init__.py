"""Treatment plans and their revisions, reviews, medications, drug screens and contingency management."""
