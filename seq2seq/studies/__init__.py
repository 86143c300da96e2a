"""Experiments behind the recipes: not the library's API, and free to change with the studies.

- `collapse_setups`, `collapse_study`: end-token collapse and its three fixes, trained
  side by side (`recipes/end_token_collapse.py`, docs/collapse-study.md).
- `decoy`: does the saliency penalty stop a classifier from reading a decoy word
  (`recipes/decoy_classifier.py`, docs/classifier.md)?

The library never imports from here; a study imports the library like any user.
"""
