"""Stage 2, measure a label sequence: shape attributes, anatomical validity, the temporal consistency
metric and the clinical indices, per frame and per sequence (no model)."""
