"""The training loop: TFM8xx. Changes to parameters behind autograd's back (``.data``)."""
