"""Stage 5, correct a sequence: latent solvers, encoding/decoding, clean-up, repair and the methods
dispatched by :func:`echotemporal.correct.smoothing.smooth_sequence`."""
