"""Supervised and knowledge-distilled image classification with ResMLP (the DeiT recipe), and evaluation."""
