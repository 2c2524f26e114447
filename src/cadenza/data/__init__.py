"""Data: a SOURCE read into one piano part per piece (corpus/), tokens (representations/), the
prepared, cached token files a training reads (dataset), and what those tokens mean to
generation (token_stats); scores and bars, which generation, evaluation and rendering share.
"""
