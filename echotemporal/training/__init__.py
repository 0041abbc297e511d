"""Stage 4, train the shape model: HDF5 training sets and the training loop (torch)."""
