"""Real on-device latency: export, devices, measurement protocol, device server, store.

Kept free of imports so `import latency.store` does not pull in TensorFlow or LiteRT.
"""
