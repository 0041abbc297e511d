"""Stage 0, shared by every stage: label constants, configuration, errors, boxes, distances, threads."""
