"""LEGION training (offline): Metaworld environments, the learner, the lifelong loop, plots, export.

Never imported by the policy node or the bridge (checked by import-linter).
"""
