"""GPU segments: chains of `opencl.*` nodes run as fused OpenCL kernels, or on NumPy."""
