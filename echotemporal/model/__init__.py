"""Stage 3, the shape model: canonical alignment, the AR-VAE network, its runtime backends (ONNX
Runtime, torch), the registry of shipped weights and the ONNX export."""
