"""Tagger (TAG + Ladder), the Table 2 baselines, and the grouping metrics."""
