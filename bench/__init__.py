"""Speed benchmarks. ``python -m bench.inference`` compares ResMLP-S12 (plain and fused) with timm's resmlp_12_224."""
