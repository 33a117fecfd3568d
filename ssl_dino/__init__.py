"""DINO self-supervised pretraining of ResMLP, and k-NN / linear evaluation of its features."""
