"""Stage 6, write what a correction produced: corrected sequence, per-frame CSV, summary, figures."""
