"""Speed measurement (``tagtool speed-train``): samples/s beside the matmul bound of a device."""
