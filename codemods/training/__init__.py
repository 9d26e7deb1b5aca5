"""The training loop: TFM801 gradients never cleared, TFM802 changes through ``.data``, TFM803 a\nrunning total that keeps every step's graph."""
