"""Generation: batched sampling from a trained run (generate), the sampling settings
(sampling: ``Sampling``) and planned forms (form).
"""
