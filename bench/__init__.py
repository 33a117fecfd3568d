"""Speed benchmarks, run from the repository root: ``python -m bench.inference`` (ResMLP-S12 plain and fused
against timm's resmlp_12_224) and ``python -m bench.knn`` (DINO k-NN evaluation). Results: docs/benchmarks.md."""
